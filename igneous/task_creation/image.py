"""Planners for image pyramids and data movement: downsample, transfer, delete."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from igneous import validate
from igneous.errors import UserError
from igneous.grid import (
    Grid,
    aligned_depth,
    as_list,
    grid,
    grid_count,
    mip_factor,
    pyramid_bytes,
    scale_bounds,
    vec,
)
from igneous.grid import chunk_size as chunk_of
from igneous.layers import (
    KNOWN_ENCODINGS,
    LayerInfo,
    check_encoding,
    normalize_path,
    read_info,
    resolve_mip,
    write_info,
)
from igneous.memory import MEMORY_OVERHEAD
from igneous.scales import (
    ensure_scales,
    memory_depth,
    new_chunk_sizes,
    scale_key,
    set_encoding,
    useful_depth,
)
from igneous.task_creation.common import (
    COMPRESS_LEVEL,
    DEFAULT_MEMORY_TARGET,
    GridPlan,
    TaskPlan,
    box_cell,
    grow_step,
    note,
)
from igneous.tasks import Task
from igneous.tasks.delete import delete
from igneous.tasks.downsample import downsample
from igneous.tasks.pyramid import resolve_method
from igneous.tasks.transfer import transfer

MEMORY_TARGET = DEFAULT_MEMORY_TARGET


def bounds_box(bounds, info: dict, bounds_mip: int, mip: int) -> tuple[np.ndarray, np.ndarray]:
    """The requested region at ``mip`` (whole layer when ``bounds`` is None)."""
    start, stop = scale_bounds(info, mip)
    if bounds is None:
        return start, stop
    lo, hi = _bbox_corners(bounds)
    f = mip_factor(info, min(bounds_mip, mip), max(bounds_mip, mip))
    if mip >= bounds_mip:
        lo, hi = lo // f, -((-hi) // f)
    else:
        lo, hi = lo * f, hi * f
    a, b = np.maximum(lo, start), np.minimum(hi, stop)
    if np.any(b <= a):
        raise UserError(
            f"bounds {as_list(lo)}-{as_list(hi)} lie outside the volume "
            f"{as_list(start)}-{as_list(stop)} at mip {mip}"
        )
    return a, b


def _bbox_corners(bounds) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(bounds, "minpt"):
        return vec(bounds.minpt), vec(bounds.maxpt)
    lo, hi = bounds
    return vec(lo), vec(hi)


def factor_vector(factor) -> np.ndarray:
    return vec(validate.factor(factor if factor is not None else (2, 2, 1)))


# -- downsample ---------------------------------------------------------------

def plan_downsample(
    layer_path: str, mip: int = 0, num_mips: int | None = None, *, factor=(2, 2, 1),
    chunk_size=None, preserve_chunk_size: bool = True, sparse: bool = False, bounds=None,
    bounds_mip: int = 0, encoding: str | None = None, encoding_level: int | None = None,
    delete_black_uploads: bool = False, background_color: int = 0, compress="gzip",
    fill_missing: bool = False, method: str = "auto", memory_target: float = MEMORY_TARGET,
    agglomerate: bool = False, timestamp=None, compress_level: int | None = COMPRESS_LEVEL,
) -> list[TaskPlan]:
    """Plan a downsample as one or more passes (each a TaskPlan).

    A pass makes as many mips as fit ``memory_target`` and keep every task on
    whole chunks; when more are asked for, later passes start from the top
    mip of the previous one and must run after it (queue stages).
    """
    layer_path = normalize_path(layer_path)
    chunk_size = validate.int_triple(chunk_size, "chunk_size")
    memory_target = validate.memory_target(memory_target)
    cv = validate.load_layer(layer_path, mip)
    info = cv.info
    mip = resolve_mip(cv, mip)
    factor = factor_vector(factor)
    check_encoding(encoding, cv.dtype, info.get("type", "image"))
    method = resolve_method(method, info.get("type", "image"))
    if num_mips is not None and num_mips < 0:
        raise UserError("num_mips must be >= 0")
    chunk_req = vec(chunk_size) if chunk_size is not None else None
    itemsize, channels = np.dtype(cv.dtype).itemsize, int(info.get("num_channels", 1))

    wanted = 10 if num_mips is None else num_mips
    chunks = new_chunk_sizes(info, mip, max(wanted, 1), factor, chunk_req, preserve_chunk_size)
    total = useful_depth(info, mip, factor, chunks, wanted)
    if num_mips is None:
        total = min(total, max(1, memory_depth(chunks[-1], factor, itemsize, channels,
                                               memory_target, total)))
    elif total < num_mips:
        note(f"making {total} mips, not {num_mips}: mip {mip + total} already fits in one chunk")
    if total == 0:
        note(f"nothing to downsample: mip {mip} already fits in one chunk")
        return [TaskPlan(lambda: iter(()), 0, "downsample (nothing to do)")]

    bounds_box(bounds, info, bounds_mip, mip)  # refuse a bad region before writing anything
    cv.update(ensure_scales(info, mip, total, factor, chunks, encoding, encoding_level)[0])
    info = cv.info

    common = dict(
        block_options(factor=factor, method=method, sparse=sparse, fill_missing=fill_missing,
                      delete_black_uploads=delete_black_uploads, background_color=background_color,
                      compress=compress, agglomerate=agglomerate, timestamp=timestamp,
                      compress_level=compress_level),
        layer_path=layer_path,
    )
    passes, pos = [], mip
    while pos < mip + total:
        remaining = mip + total - pos
        offsets = [scale_bounds(info, pos + i)[0] for i in range(remaining + 1)]
        k = aligned_depth(offsets, factor, include_base=False)
        if k == 0:
            raise UserError(f"mip {pos + 1} of {layer_path} has a voxel_offset that is not "
                            f"floor(offset / factor) of mip {pos}; fix the info file")
        top_chunk = chunk_of(info, pos + min(k, remaining))
        k = min(k, max(1, memory_depth(top_chunk, factor, itemsize, channels, memory_target, k)))
        passes.append(_downsample_pass(info, pos, k, factor, bounds, bounds_mip, common,
                                       itemsize * channels, memory_target))
        pos += k
    if len(passes) > 1:
        note(f"downsample split into {len(passes)} passes (mips per pass limited by memory or "
             "by voxel_offset alignment); each pass must finish before the next starts")
    return passes


def _downsample_pass(info: dict, mip: int, k: int, factor, bounds, bounds_mip: int,
                     common: dict, bytes_per_voxel: int, memory_target: float) -> TaskPlan:
    top = mip + k
    lo, hi = bounds_box(bounds, info, bounds_mip, top)
    origin = scale_bounds(info, top)[0]
    scale = factor**k
    itemsize = 1  # bytes_per_voxel already holds itemsize * channels

    def need(step):
        return pyramid_bytes(step * scale, itemsize, bytes_per_voxel, factor, k) * MEMORY_OVERHEAD

    # tasks on the top mip's chunk grid, grown to fill the memory target
    step = grow_step(chunk_of(info, top), need, memory_target, start=lo, stop=hi, origin=origin,
                     voxel_scale=float(np.prod(scale)))
    return GridPlan(box_cell, Grid(lo, hi, origin, step), dict(common, mip=mip, num_mips=k),
                    f"downsample mip {mip} -> {top}", task=downsample.__name__, scale=as_list(scale))


def create_downsampling_tasks(
    layer_path: str, mip: int = 0, fill_missing: bool = False, axis: str = "z",
    num_mips: int | None = 5, preserve_chunk_size: bool = True, sparse: bool = False,
    bounds=None, chunk_size=None, encoding: str | None = None, delete_black_uploads: bool = False,
    background_color: int = 0, dest_path: str | None = None, compress="gzip",
    factor=(2, 2, 1), bounds_mip: int = 0, memory_target: float = MEMORY_TARGET,
    encoding_level: int | None = None, method: str = "auto", agglomerate: bool = False,
    timestamp=None, compress_level: int | None = COMPRESS_LEVEL,
) -> TaskPlan:
    """Tasks that build mips ``mip+1 .. mip+num_mips`` (first pass only when
    alignment or memory split the work: use ``plan_downsample`` for all)."""
    if axis != "z":
        raise UserError("only axis='z' is supported (use factor to choose the pooled axes)")
    if dest_path is not None:
        raise UserError("dest_path is not supported for downsampling; use create_transfer_tasks")
    passes = plan_downsample(
        layer_path, mip, num_mips, factor=factor, chunk_size=chunk_size,
        preserve_chunk_size=preserve_chunk_size, sparse=sparse, bounds=bounds,
        bounds_mip=bounds_mip, encoding=encoding, encoding_level=encoding_level,
        delete_black_uploads=delete_black_uploads, background_color=background_color,
        compress=compress, fill_missing=fill_missing, method=method,
        memory_target=memory_target, agglomerate=agglomerate, timestamp=timestamp,
        compress_level=compress_level,
    )
    if len(passes) > 1:
        note("only the first pass is returned; run again from the top mip it makes for the rest")
    return passes[0]


# -- transfer -----------------------------------------------------------------

def dest_info(src_info: dict, mip: int, *, chunk, encoding, encoding_level, translate,
               bounds_lo, bounds_hi, truncate_scales: bool, clean_info: bool) -> dict:
    info = copy.deepcopy(src_info)
    if info.pop("zarr", None) is not None:  # an OME-Zarr source; a zarr destination gets its own
        for scale in info["scales"]:
            scale["key"] = scale_key(scale["resolution"])
    if truncate_scales:
        info["scales"] = info["scales"][: mip + 1]
    base = info["scales"][mip]
    res_mip = np.asarray(base["resolution"], dtype=np.float64)
    for i, scale in enumerate(info["scales"][: mip + 1]):
        if scale.get("encoding") not in KNOWN_ENCODINGS:
            scale["encoding"] = "raw"  # a zarr / n5 codec (e.g. blosc) is no precomputed encoding
        ratio = np.round(res_mip / np.asarray(scale["resolution"], dtype=np.float64)).astype(np.int64)
        lo = bounds_lo * ratio + translate * ratio
        scale["voxel_offset"] = as_list(lo)
        scale["size"] = as_list((bounds_hi - bounds_lo) * ratio)
        if i == mip:
            scale.pop("sharding", None)  # written chunk by chunk unless a sharded planner says so
            if chunk is not None:
                scale["chunk_sizes"] = [as_list(chunk)]
            set_encoding(scale, encoding, encoding_level)
    if clean_info:
        for key in ("mesh", "skeletons", "spatial_index"):
            info.pop(key, None)
    return info


def _compatible(existing: dict, planned: dict, mip: int) -> str | None:
    """Why an existing destination info cannot take this transfer (or None)."""
    for key in ("data_type", "num_channels", "type"):
        if existing.get(key) != planned.get(key):
            return f"{key} {existing.get(key)!r} (the transfer writes {planned.get(key)!r})"
    if len(existing["scales"]) <= mip:
        return f"no mip {mip}"
    a, b = existing["scales"][mip], planned["scales"][mip]
    for key in ("resolution", "chunk_sizes", "encoding", "voxel_offset", "size", "sharding"):
        if a.get(key) != b.get(key):
            return f"mip {mip} {key} {a.get(key)} (the transfer writes {b.get(key)})"
    return None


def block_options(*, factor, method: str, sparse: bool, fill_missing: bool,
                  delete_black_uploads: bool, background_color: int, compress, agglomerate: bool,
                  timestamp, compress_level: int | None = None) -> dict:
    """Task keywords shared by every block task (downsample, transfer)."""
    options = dict(
        factor=as_list(factor), method=method, sparse=bool(sparse), fill_missing=bool(fill_missing),
        delete_black_uploads=bool(delete_black_uploads), background_color=int(background_color),
        compress=compress, agglomerate=bool(agglomerate), timestamp=timestamp,
    )
    if compress_level is not None:
        if not 1 <= int(compress_level) <= 12:
            raise UserError(f"compress_level {compress_level} is out of range; use 1 (fast) to 9 "
                            "(small) for gzip, up to 11 for br")
        options["compress_level"] = int(compress_level)
    return options


@dataclass
class TransferSetup:
    """A checked transfer: where data comes from, where it goes, the new info."""

    src_path: str
    dest_path: str
    mip: int
    info: dict  # the source's
    dtype: np.dtype
    factor: np.ndarray
    method: str
    chunk: np.ndarray
    translate: np.ndarray
    dest_lo: np.ndarray
    dest_hi: np.ndarray
    planned: dict  # the destination's info


def transfer_setup(src_layer_path: str, dest_layer_path: str, *, mip: int, chunk_size, encoding,
                   encoding_level, factor, method: str, bounds, bounds_mip: int, translate,
                   dest_voxel_offset, cutout: bool, truncate_scales: bool,
                   clean_info: bool) -> TransferSetup:
    src_path, dest_path = normalize_path(src_layer_path), normalize_path(dest_layer_path)
    if src_path.rstrip("/") == dest_path.rstrip("/"):
        raise UserError("source and destination are the same layer; use image downsample instead")
    chunk_size = validate.int_triple(chunk_size, "chunk_size")
    translate = validate.int_triple(translate, "translate", positive=False)
    dest_voxel_offset = validate.int_triple(dest_voxel_offset, "dest_voxel_offset", positive=False)
    src = validate.load_layer(src_path, mip)
    mip = resolve_mip(src, mip)
    info = src.info
    factor = factor_vector(factor)
    check_encoding(encoding, src.dtype, info.get("type", "image"))
    method = resolve_method(method, info.get("type", "image"))
    chunk = vec(chunk_size) if chunk_size is not None else vec(
        info["zarr"]["levels"][mip]["chunks"] if "zarr" in info  # an OME-Zarr's chunk, not shard
        else info["scales"][mip]["chunk_sizes"][0])
    src_lo, src_hi = scale_bounds(info, mip)
    if bounds is not None:
        src_lo, src_hi = bounds_box(bounds, info, bounds_mip, mip)
    if dest_voxel_offset is not None:
        translate = vec(dest_voxel_offset) - src_lo
    translate = vec(translate if translate is not None else (0, 0, 0))
    keep_lo, keep_hi = (src_lo, src_hi) if (cutout or bounds is not None) else scale_bounds(info, mip)
    planned = dest_info(
        info, mip, chunk=chunk, encoding=encoding, encoding_level=encoding_level,
        translate=translate, bounds_lo=keep_lo, bounds_hi=keep_hi,
        truncate_scales=truncate_scales, clean_info=clean_info,
    )
    return TransferSetup(src_path, dest_path, mip, info, src.dtype, factor, method, chunk,
                         translate, src_lo + translate, src_hi + translate, planned)


def create_transfer_tasks(
    src_layer_path: str, dest_layer_path: str, chunk_size=None, shape=None,
    fill_missing: bool = False, translate=None, bounds=None, mip: int = 0,
    preserve_chunk_size: bool = True, encoding: str | None = None, skip_downsamples: bool = False,
    delete_black_uploads: bool = False, background_color: int = 0, agglomerate: bool = False,
    timestamp=None, compress="gzip", factor=None, sparse: bool = False, dest_voxel_offset=None,
    memory_target: float = MEMORY_TARGET, max_mips: int = 5, clean_info: bool = False,
    no_src_update: bool = True, truncate_scales: bool = True, cutout: bool = False,
    bounds_mip: int = 0, encoding_level: int | None = None, method: str = "auto",
    overwrite_info: bool = False, compress_level: int | None = COMPRESS_LEVEL,
    sharded: bool = False, shard_shape=None,
) -> TaskPlan:
    """Copy ``src`` (at ``mip``) into ``dest`` with new chunking / encoding /
    position, writing up to ``max_mips`` downsamples in the same pass.
    ``dest`` may name an OME-Zarr (a ``.zarr`` path or a ``zarr://``,
    ``zarr2://``, ``zarr3://`` prefix); ``sharded`` / ``shard_shape`` then
    shard its zarr v3 arrays (each task writes whole shards)."""
    from igneous.zarrio import destination_info

    shape = validate.int_triple(shape, "shape")
    memory_target = validate.memory_target(memory_target)
    setup = transfer_setup(
        src_layer_path, dest_layer_path, mip=mip, chunk_size=chunk_size, encoding=encoding,
        encoding_level=encoding_level, factor=factor, method=method, bounds=bounds,
        bounds_mip=bounds_mip, translate=translate, dest_voxel_offset=dest_voxel_offset,
        cutout=cutout, truncate_scales=truncate_scales, clean_info=clean_info,
    )
    src_path, dest_path, mip, info = setup.src_path, setup.dest_path, setup.mip, setup.info
    factor, translate, chunk, planned = setup.factor, setup.translate, setup.chunk, setup.planned
    dest_lo, dest_hi = setup.dest_lo, setup.dest_hi
    planned = destination_info(dest_layer_path, planned, sharded=sharded, shard_shape=shard_shape,
                               shard_bytes=min(128 * 2**20, memory_target / 8), encoding=encoding)
    dest = prepare_dest(dest_path, planned, mip, overwrite_info)
    itemsize, channels = setup.dtype.itemsize, int(info.get("num_channels", 1))
    d_origin = scale_bounds(dest.info, mip)[0]

    num_mips = 0
    if not skip_downsamples and max_mips > 0:
        chunks = new_chunk_sizes(dest.info, mip, max_mips, factor, None, preserve_chunk_size)
        num_mips = useful_depth(dest.info, mip, factor, chunks, max_mips)
        num_mips = memory_depth(chunks[-1] if num_mips else chunk, factor, itemsize, channels,
                                memory_target, num_mips)
        if shape is not None:
            shape_v = vec(shape)
            while num_mips and np.any(shape_v % (chunks[num_mips - 1] * factor**num_mips)):
                num_mips -= 1
        new_info, _ = ensure_scales(dest.info, mip, num_mips, factor, chunks, None, None)
        offsets = [scale_bounds(new_info, mip + i)[0] for i in range(num_mips + 1)]
        aligned = aligned_depth(offsets, factor, include_base=True)
        if aligned < num_mips:
            note(f"destination voxel_offset {as_list(d_origin)} allows {aligned} downsamples in "
                 f"this pass (not {num_mips}); run `igneous image downsample` on the result for more")
            num_mips = aligned
            new_info, _ = ensure_scales(dest.info, mip, num_mips, factor, chunks, None, None)
        dest.update(new_info)

    dchunk = vec(dest.info["scales"][mip]["chunk_sizes"][0])
    if shape is None:
        top_chunk = vec(dest.info["scales"][mip + num_mips]["chunk_sizes"][0]) if num_mips else dchunk
        step = top_chunk * factor**num_mips
        if num_mips == 0:
            step = grow_shape(dchunk, itemsize, channels, memory_target, dest_hi - dest_lo)

        def need(trial):
            return pyramid_bytes(trial, itemsize, channels, factor, num_mips) * MEMORY_OVERHEAD

        step = grow_step(step, need, memory_target, start=dest_lo, stop=dest_hi, origin=d_origin)
    else:
        step = vec(shape)
        if np.any(step % dchunk):
            nearest = np.maximum(dchunk, np.round(step / dchunk).astype(np.int64) * dchunk)
            raise UserError(
                f"shape {as_list(step)} is not a multiple of the destination chunk size "
                f"{as_list(dchunk)}; try --shape {','.join(map(str, as_list(nearest)))}"
            )
    kwargs = dict(
        block_options(factor=factor, method=setup.method, sparse=sparse, fill_missing=fill_missing,
                      delete_black_uploads=delete_black_uploads, background_color=background_color,
                      compress=compress, agglomerate=agglomerate, timestamp=timestamp,
                      compress_level=compress_level),
        src_path=src_path, dest_path=dest_path, mip=mip, translate=as_list(translate),
        num_mips=num_mips,
    )

    return GridPlan(box_cell, Grid(dest_lo, dest_hi, d_origin, step), kwargs,
                    f"transfer mip {mip} (+{num_mips} downsamples)", task=transfer.__name__)


def grow_shape(chunk, itemsize: int, channels: int, memory_target: float, extent) -> np.ndarray:
    """Without downsamples, batch several chunks per task (fewer, larger tasks)."""
    step = vec(chunk).copy()
    limit = min(memory_target, 512 * 2**20)
    for axis in (0, 1, 0, 1, 0, 1):
        bigger = step.copy()
        bigger[axis] *= 2
        if bigger[axis] > max(extent[axis], chunk[axis]):
            continue
        if np.prod(bigger) * itemsize * channels * MEMORY_OVERHEAD > limit:
            break
        step = bigger
    return step


def prepare_dest(dest_path: str, planned: dict, mip: int, overwrite_info: bool) -> LayerInfo:
    """Create the destination's info file, or check the one already there."""
    existing = read_info(dest_path)
    if existing is not None and not overwrite_info:
        why = _compatible(existing, planned, mip)
        if why:
            raise UserError(
                f"destination {dest_path} already exists with {why}; choose another "
                "destination, or pass --overwrite-info to replace its info file"
            )
    else:
        write_info(dest_path, planned)
    return LayerInfo(dest_path)


# -- delete -------------------------------------------------------------------

def create_deletion_tasks(layer_path: str, mip: int = 0, num_mips: int = 5, shape=None,
                          bounds=None, bounds_mip: int = 0) -> TaskPlan:
    """Tasks deleting the chunks of ``mip .. mip+num_mips`` over ``bounds``."""
    layer_path = normalize_path(layer_path)
    shape = validate.int_triple(shape, "shape")
    cv = validate.load_layer(layer_path, mip)
    if "zarr" in cv.info:
        raise UserError(f"{layer_path} is an OME-Zarr; image rm deletes precomputed chunks only "
                        "(remove a level's array directory and its multiscales entry instead)")
    mip = resolve_mip(cv, mip)
    info = cv.info
    top = min(len(info["scales"]) - 1, mip + max(0, num_mips))
    num_mips = top - mip
    f = mip_factor(info, mip, top)
    if shape is None:
        step = chunk_of(info, top) * f
    else:
        step = vec(shape)
        if np.any(step % chunk_of(info, mip)):
            raise UserError(f"shape {as_list(step)} must be a multiple of the chunk size "
                            f"{as_list(chunk_of(info, mip))} of mip {mip}")
    lo, hi = bounds_box(bounds, info, bounds_mip, mip)
    origin = scale_bounds(info, mip)[0]

    def make():
        for a, b in grid(lo, hi, origin, step):
            yield Task.of(delete, dict(layer_path=layer_path, mip=mip, offset=as_list(a),
                                      shape=as_list(b - a), num_mips=num_mips))

    return TaskPlan(make, grid_count(lo, hi, origin, step), f"delete mips {mip}..{top}")
