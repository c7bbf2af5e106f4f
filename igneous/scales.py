"""Adding downsampled scales to an info file, and choosing how many."""

from __future__ import annotations

import copy

import numpy as np

from igneous.errors import UserError
from igneous.grid import Vec, as_list, chunk_size, mip_factor, pyramid_bytes, scale_box, vec
from igneous.memory import MEMORY_OVERHEAD


def format_resolution(res: np.ndarray) -> list:
    return [int(r) if float(r).is_integer() else float(r) for r in res]


def scale_key(res: list) -> str:
    return "_".join(str(r) for r in res)


def new_chunk_sizes(info: dict, mip: int, count: int, factor: Vec, chunk: Vec | None,
                    preserve: bool) -> list[Vec]:
    """Chunk size of each new mip ``mip+1 .. mip+count``."""
    base = chunk_size(info, mip)
    if chunk is not None:
        return [vec(chunk)] * count
    if preserve:
        return [base] * count
    return [np.maximum(base // factor**i, 1) for i in range(1, count + 1)]


def useful_depth(info: dict, mip: int, factor: Vec, chunks: list[Vec], wanted: int) -> int:
    """Stop adding mips once a mip already fits in one chunk along every
    downsampled axis (coarser ones would show nothing new)."""
    size = vec(info["scales"][mip]["size"])
    k = 0
    for i in range(wanted):
        down = factor > 1
        cs = chunks[i - 1] if i > 0 else chunk_size(info, mip)
        if i > 0 and np.all(size[down] <= cs[down]):
            break
        if np.all(size[down] <= 1):
            break
        size = -(-size // factor)
        k += 1
    return k


def memory_depth(chunk_top: Vec, factor: Vec, itemsize: int, channels: int, memory_target: float,
                 wanted: int, overhead: float | None = None) -> int:
    """Most mips one task can make from a block of ``chunk_top * factor^k``
    (``overhead``: multiplier for decode buffers and temporaries)."""
    overhead = MEMORY_OVERHEAD if overhead is None else overhead
    best = 0
    for k in range(1, wanted + 1):
        need = pyramid_bytes(chunk_top * factor**k, itemsize, channels, factor, k) * overhead
        if need > memory_target:
            break
        best = k
    return best


def ensure_scales(info: dict, mip: int, count: int, factor: Vec, chunks: list[Vec],
                  encoding: str | None, encoding_level: int | None) -> tuple[dict, bool]:
    """Return (info with mips mip+1..mip+count, changed?). Existing mips are
    kept when they match; a mismatch is an error rather than a silent rewrite."""
    info = copy.deepcopy(info)
    scales = info["scales"]
    base = scales[0]
    f0 = mip_factor(info, 0, mip)
    changed = False
    for i in range(1, count + 1):
        total = f0 * factor**i
        res = np.asarray(base["resolution"], dtype=np.float64) * total
        offset, size = scale_box(base.get("voxel_offset", (0, 0, 0)), base["size"], total)
        target = mip + i
        if target < len(scales):
            have = np.asarray(scales[target]["resolution"], dtype=np.float64)
            if not np.allclose(have, res):
                raise UserError(
                    f"mip {target} already exists with resolution {format_resolution(have)}, "
                    f"but this downsample makes {format_resolution(res)}; delete mips >= {target} "
                    "from the info file (or use another --factor)"
                )
            want_chunk = as_list(chunks[i - 1])
            if encoding and scales[target]["encoding"] != encoding:
                raise UserError(
                    f"mip {target} already exists with encoding {scales[target]['encoding']!r}; "
                    f"remove it (igneous image rm --mip {target}) before re-encoding as {encoding!r}"
                )
            if scales[target]["chunk_sizes"][0] != want_chunk:
                raise UserError(
                    f"mip {target} already exists with chunk size {scales[target]['chunk_sizes'][0]}, "
                    f"not {want_chunk}; omit --chunk-size or remove that mip first"
                )
            continue
        scale = {
            "encoding": encoding or scales[mip]["encoding"],
            "chunk_sizes": [as_list(chunks[i - 1])],
            "resolution": format_resolution(res),
            "voxel_offset": as_list(offset),
            "size": as_list(size),
        }
        scale["key"] = scale_key(scale["resolution"])
        _copy_encoding_params(scales[mip], scale, encoding_level)
        scales.append(scale)
        changed = True
    return info, changed


def new_layer_info(layer_type: str, data_type: str, encoding: str, resolution, voxel_offset,
                   size, chunk, num_channels: int = 1) -> dict:
    """The info of a new one-scale layer (what CloudVolume.create_new_info
    writes, without importing CloudVolume)."""
    res = format_resolution(np.asarray(resolution))
    scale = {"key": scale_key(res), "resolution": res, "voxel_offset": as_list(vec(voxel_offset)),
             "size": as_list(vec(size)), "chunk_sizes": [as_list(vec(chunk))], "encoding": encoding}
    _copy_encoding_params({}, scale, None)
    return {"type": layer_type, "data_type": str(np.dtype(data_type)),
            "num_channels": int(num_channels), "scales": [scale]}


def _copy_encoding_params(src: dict, dest: dict, level: int | None) -> None:
    enc = dest["encoding"]
    if enc == "compressed_segmentation":
        dest["compressed_segmentation_block_size"] = src.get(
            "compressed_segmentation_block_size", [8, 8, 8])
    fields = {"jpeg": "jpeg_quality", "png": "png_level", "jpegxl": "jxl_quality",
              "fpzip": "fpzip_precision"}
    if enc in fields:
        if level is not None:
            dest[fields[enc]] = int(level)
        elif fields[enc] in src and src.get("encoding") == enc:
            dest[fields[enc]] = src[fields[enc]]


def set_encoding(scale: dict, encoding: str | None, level: int | None) -> None:
    """Apply --encoding/--encoding-level to one scale in place."""
    if encoding:
        scale["encoding"] = encoding
    _copy_encoding_params(dict(scale), scale, level)
