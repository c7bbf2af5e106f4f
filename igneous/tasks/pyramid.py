"""Block work shared by downsample and transfer: read a block, pool it into
coarser mips, write each mip as whole chunks.

Pooling rule (all methods): each level pools windows of ``factor`` voxels;
where a window runs past the edge of the data, the edge voxel is repeated
to fill it. Averages keep full-precision sums across levels and floor once at
the end (tinybrain's rule), so mip k is the floored mean of its whole
``factor^k`` block in the interior.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np

from igneous.errors import UserError
from igneous.grid import Vec, clip, is_empty, vec

METHODS = ("auto", "avg", "mode", "min", "max", "striding")


def resolve_method(method: str, layer_type: str) -> str:
    if method not in METHODS:
        raise UserError(f"unknown downsample method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        return "mode" if layer_type == "segmentation" else "avg"
    return method


def pool(img: np.ndarray, factor: Sequence[int], num_mips: int, method: str,
         sparse: bool = False) -> list[np.ndarray]:
    """Mips 1..num_mips of a 4D (x, y, z, channel) Fortran-ordered block."""
    import tinybrain

    if num_mips <= 0:
        return []
    factor = tuple(int(f) for f in factor)
    if method == "avg":
        whole = all(s % f**num_mips == 0 for s, f in zip(img.shape[:3], factor))
        if whole:  # tinybrain is exact on whole windows, not on ragged edges
            return list(tinybrain.downsample_with_averaging(img, factor, num_mips=num_mips,
                                                            sparse=sparse))
        return _average_ragged(img, factor, num_mips, sparse)
    if method == "mode":
        per_channel = [
            tinybrain.downsample_segmentation(np.asfortranarray(img[..., c]), factor,
                                              sparse=sparse, num_mips=num_mips)
            for c in range(img.shape[3])
        ]
        return [np.stack([ch[i] for ch in per_channel], axis=3) for i in range(num_mips)]
    if method == "striding":
        out, cur = [], img
        for _ in range(num_mips):
            cur = cur[:: factor[0], :: factor[1], :: factor[2]]
            out.append(np.asfortranarray(cur))
        return out
    if method in ("min", "max"):
        reduce = np.minimum if method == "min" else np.maximum
        out, cur = [], img
        for _ in range(num_mips):
            cur = _reduce_windows(cur, factor, reduce)
            out.append(cur)
        return out
    raise UserError(f"unknown downsample method {method!r}")


def _average_ragged(img: np.ndarray, factor: Sequence[int], num_mips: int,
                    sparse: bool) -> list[np.ndarray]:
    """Average pooling for blocks cut by the volume edge: exact sums carried
    across levels, edge voxels repeated to fill windows, floored at the end."""
    floating = img.dtype.kind == "f"
    sums = img.astype(np.float64 if floating else np.int64)
    counts = (img != 0).astype(np.int64) if sparse else None
    out = []
    for level in range(1, num_mips + 1):
        sums = _reduce_windows(sums, factor, np.add)
        if sparse:
            counts = _reduce_windows(counts, factor, np.add)
            safe = np.maximum(counts, 1)
            mean = sums / safe if floating else sums // safe
        else:
            n = int(np.prod(factor)) ** level
            mean = sums / n if floating else sums // n
        out.append(np.asfortranarray(mean.astype(img.dtype)))
    return out


def _reduce_windows(img: np.ndarray, factor: Sequence[int], reduce) -> np.ndarray:
    pad = [(0, (-s) % f) for s, f in zip(img.shape[:3], factor)] + [(0, 0)]
    if any(p[1] for p in pad):
        img = np.pad(img, pad, mode="edge")
    sx, sy, sz, c = img.shape
    fx, fy, fz = factor
    # Fortran order: the index within a window varies fastest, so it comes first
    blocks = img.reshape(fx, sx // fx, fy, sy // fy, fz, sz // fz, c, order="F")
    out = reduce.reduce(reduce.reduce(reduce.reduce(blocks, axis=4), axis=2), axis=0)
    return np.asfortranarray(out)


def open_pair(src_path: str, dest_path: str, mip: int, *, fill_missing: bool, agglomerate: bool,
              timestamp, delete_black_uploads: bool, background_color: int, compress,
              compress_level: int | None = None):
    """The source (read) and destination (write) Volumes of a block task."""
    from igneous.chunkio import open_volume

    src = open_volume(src_path, mip, fill_missing=fill_missing, agglomerate=agglomerate,
                      timestamp=timestamp)
    dest = open_volume(dest_path, mip, delete_black_uploads=delete_black_uploads,
                       background_color=background_color, compress=compress,
                       compress_level=compress_level)
    return src, dest


def read_block(vol, lo: Vec, hi: Vec, mip: int) -> np.ndarray:
    """Voxels [lo, hi) of a mip as a 4D Fortran array (a copy we may modify);
    ``vol`` is an igneous.chunkio.Volume, or a CloudVolume."""
    native = getattr(vol, "native", None)
    if native is not None and native(mip):
        return vol.read(vec(lo), vec(hi), mip)
    from cloudvolume import Bbox

    cv = vol.cloudvolume(mip) if native is not None else vol
    img = np.asfortranarray(np.asarray(cv.download(Bbox(lo, hi), mip=mip)))
    if _misreads_byte_order(cv, img):
        img.byteswap(inplace=True)
    return img


def _misreads_byte_order(cv, img: np.ndarray) -> bool:
    """CloudVolume (12.x) decodes N5 blocks, which are big-endian, as native
    little-endian: multi-byte N5 voxels arrive byte-swapped. (tests/test_transfer_formats.py
    fails if a CloudVolume release fixes this, so the swap never doubles.)"""
    return (img.dtype.itemsize > 1 and sys.byteorder == "little"
            and getattr(cv.meta.path, "format", "") == "n5")


def pad_low(img: np.ndarray, pad: Vec) -> np.ndarray:
    """Repeat the first voxel layer ``pad`` times at the low end of each axis."""
    if not np.any(pad):
        return img
    widths = [(int(p), 0) for p in pad] + [(0, 0)]
    return np.asfortranarray(np.pad(img, widths, mode="edge"))


def write_region(vol, img: np.ndarray, origin: Vec, mip: int) -> None:
    """Write ``img`` placed at ``origin`` into ``mip`` of a Volume, cropped to the mip's bounds."""
    start, stop = vol.bounds(mip)
    lo, hi = clip(origin, origin + vec(img.shape[:3]), start, stop)
    if is_empty(lo, hi):
        return
    a, b = lo - origin, hi - origin
    part = img[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
    if not (vol.native(mip) and _whole_chunks(vol, lo, hi, mip)):
        cv = vol.cloudvolume(mip)
        cv[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = part
        return
    vol.write_chunks(part, lo, mip)


def _whole_chunks(vol, lo: Vec, hi: Vec, mip: int) -> bool:
    """Does [lo, hi) cover whole chunks (those cut by the volume's end count as whole)?"""
    start, stop = vol.bounds(mip)
    chunk = vol.chunk_size(mip)
    return bool(np.all((lo - start) % chunk == 0)
                and np.all(((hi - start) % chunk == 0) | (hi == stop)))


def map_block(src_path: str, dest_path: str, mip: int, offset: Sequence[int],
              shape: Sequence[int], fn: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
              translate: Sequence[int] = (0, 0, 0), fill_missing: bool = False,
              compress: str | None = "gzip") -> None:
    """Write ``fn(block, origin)`` to the destination block ``[offset, offset +
    shape)``; the block is read from the source at ``offset - translate``
    (4D x,y,z,c; ``origin`` is its source voxel position)."""
    from igneous.chunkio import open_volume

    src = open_volume(src_path, mip, fill_missing=fill_missing)
    dest = open_volume(dest_path, mip, compress=compress)
    lo = vec(offset)
    src_lo = lo - vec(translate)
    img = read_block(src, src_lo, src_lo + vec(shape), mip)
    out = fn(img, src_lo)
    if out.ndim == 3:
        out = out[..., np.newaxis]
    write_region(dest, np.asfortranarray(out.astype(dest.dtype, copy=False)), lo, mip)


def build_pyramid(src, dest, *, src_lo: Vec, src_hi: Vec, dest_lo: Vec, src_mip: int,
                  dest_mip: int, num_mips: int, factor: Sequence[int], method: str, sparse: bool,
                  write_base: bool) -> None:
    """Read the source block, optionally write it at ``dest_mip``, then write
    ``num_mips`` pooled mips above it. ``dest_lo`` may lie before the data
    (by less than one factor): that margin is filled by edge repetition."""
    factor = vec(factor)
    d_start, d_stop = dest.bounds(dest_mip)
    span = src_hi - src_lo
    # the part of the block that holds data, in destination coordinates
    have_lo, have_hi = clip(dest_lo, dest_lo + span, d_start, d_stop)
    if is_empty(have_lo, have_hi):
        return
    shift = src_lo - dest_lo
    img = read_block(src, have_lo + shift, have_hi + shift, src_mip)
    if write_base:
        write_region(dest, img, have_lo, dest_mip)
    if num_mips <= 0:
        return
    img = pad_low(img, have_lo - dest_lo)
    for i, level in enumerate(pool(img, factor, num_mips, method, sparse), start=1):
        write_region(dest, level, dest_lo // factor**i, dest_mip + i)
