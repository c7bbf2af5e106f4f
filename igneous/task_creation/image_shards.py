"""Sharded image scales: transfer into, and downsample into, sharded mips.

Each task writes exactly one whole shard (clipped at the volume edge), which
is what CloudVolume's sharded writer needs; the block work itself is the
ordinary ``downsample`` / ``transfer`` task. Shard parameters are chosen so a
task's shard (and for downsampling its source block) fits the memory target.
Downsampling makes one sharded mip per pass; further mips are queued as later
passes (stages) automatically.
"""

from __future__ import annotations

import numpy as np

from igneous import validate
from igneous.errors import UserError
from igneous.grid import as_list, grid, grid_count, scale_bounds, vec
from igneous.grid import chunk_size as chunk_of
from igneous.layers import check_encoding, normalize_path, resolve_mip
from igneous.memory import MEMORY_OVERHEAD
from igneous.scales import ensure_scales, new_chunk_sizes, useful_depth
from igneous.task_creation.common import TaskPlan, note
from igneous.task_creation.image import (
    MEMORY_TARGET,
    block_options,
    bounds_box,
    factor_vector,
    prepare_dest,
    transfer_setup,
)
from igneous.tasks import Task
from igneous.tasks.downsample import downsample
from igneous.tasks.pyramid import resolve_method
from igneous.tasks.transfer import transfer


def _shard_file_compression(compress) -> None:
    """Shard files are read by byte ranges, so the file itself is never
    compressed; chunks inside are (the spec's ``data_encoding: gzip``)."""
    if compress not in (None, "gzip"):
        raise UserError(f"--compress {compress} cannot apply to shard files; chunks inside shards "
                        "are gzip-encoded by the sharding spec")
    return None


def shard_spec(scale: dict, dtype, channels: int, shard_bytes: float) -> dict:
    """A sharding specification whose shards hold about ``shard_bytes`` of voxels."""
    from cloudvolume.datasource.precomputed.sharding import compute_shard_params_for_image

    spec = compute_shard_params_for_image(
        scale["size"], scale["chunk_sizes"][0], scale["encoding"],
        int(np.dtype(dtype).itemsize * channels), uncompressed_shard_bytesize=int(shard_bytes),
    )
    return {k: (int(v) if isinstance(v, (int, np.integer)) else v) for k, v in spec.to_dict().items()}


def shard_shape(info: dict, mip: int) -> np.ndarray:
    """Voxel shape of one shard of a sharded mip."""
    from cloudvolume.datasource.precomputed.sharding import image_shard_shape_from_spec

    scale = info["scales"][mip]
    return vec(image_shard_shape_from_spec(scale["sharding"], scale["size"], scale["chunk_sizes"][0]))


def plan_shard_downsample(
    layer_path: str, mip: int = 0, num_mips: int = 1, *, fill_missing: bool = False,
    sparse: bool = False, chunk_size=None, encoding: str | None = None,
    memory_target: float = MEMORY_TARGET, agglomerate: bool = False, timestamp=None,
    factor=(2, 2, 1), bounds=None, bounds_mip: int = 0, method: str = "auto",
    delete_black_uploads: bool = False, background_color: int = 0, compress=None,
) -> list[TaskPlan]:
    """Passes making sharded mips ``mip+1 .. mip+num_mips``, one mip per pass."""
    layer_path = normalize_path(layer_path)
    chunk_size = validate.int_triple(chunk_size, "chunk_size")
    memory_target = validate.memory_target(memory_target)
    layer = validate.load_layer(layer_path, mip)
    info = layer.info
    mip = resolve_mip(layer, mip)
    factor = factor_vector(factor)
    layer_type = info.get("type", "image")
    check_encoding(encoding, layer.dtype, layer_type)
    method = resolve_method(method, layer_type)
    channels = int(info.get("num_channels", 1))
    chunks = new_chunk_sizes(info, mip, max(num_mips, 1), factor,
                             vec(chunk_size) if chunk_size is not None else None, True)
    total = useful_depth(info, mip, factor, chunks, num_mips)
    if total == 0:
        note(f"nothing to downsample: mip {mip} already fits in one chunk")
        return [TaskPlan(lambda: iter(()), 0, "sharded downsample (nothing to do)")]
    bounds_box(bounds, info, bounds_mip, mip)
    new_info, _ = ensure_scales(info, mip, total, factor, chunks, encoding, None)
    # the source block of a shard is prod(factor) times the shard itself
    shard_bytes = memory_target / MEMORY_OVERHEAD / (1 + float(np.prod(factor)))
    for m in range(mip + 1, mip + total + 1):
        scale = new_info["scales"][m]
        if m < len(info["scales"]) and "sharding" not in info["scales"][m]:
            raise UserError(f"mip {m} already exists unsharded; remove it (igneous image rm --mip {m}) "
                            "or downsample without --sharded")
        scale.setdefault("sharding", shard_spec(scale, layer.dtype, channels, shard_bytes))
    layer.update(new_info)
    info = new_info

    options = dict(
        block_options(factor=factor, method=method, sparse=sparse, fill_missing=fill_missing,
                      delete_black_uploads=delete_black_uploads, background_color=background_color,
                      compress=_shard_file_compression(compress), agglomerate=agglomerate,
                      timestamp=timestamp),
        layer_path=layer_path,
    )
    passes = []
    for m in range(mip, mip + total):
        top = m + 1
        lo, hi = bounds_box(bounds, info, bounds_mip, top)
        origin, step = scale_bounds(info, top)[0], shard_shape(info, top)

        def make(m=m, lo=lo, hi=hi, origin=origin, step=step):
            for a, b in grid(lo, hi, origin, step):
                yield Task.of(downsample, dict(options, mip=m, num_mips=1,
                                              offset=as_list(a * factor), shape=as_list((b - a) * factor)))

        passes.append(TaskPlan(make, grid_count(lo, hi, origin, step), f"sharded downsample mip {m} -> {top}"))
    return passes


def create_image_shard_downsample_tasks(
    cloudpath: str, mip: int = 0, fill_missing: bool = False, sparse: bool = False,
    chunk_size=None, encoding: str | None = None, memory_target: float = MEMORY_TARGET,
    agglomerate: bool = False, timestamp=None, factor=(2, 2, 1), bounds=None, bounds_mip: int = 0,
    method: str = "auto",
) -> TaskPlan:
    """Tasks making the sharded mip ``mip + 1`` (one shard per task)."""
    return plan_shard_downsample(
        cloudpath, mip, 1, fill_missing=fill_missing, sparse=sparse, chunk_size=chunk_size,
        encoding=encoding, memory_target=memory_target, agglomerate=agglomerate,
        timestamp=timestamp, factor=factor, bounds=bounds, bounds_mip=bounds_mip, method=method,
    )[0]


def create_image_shard_transfer_tasks(
    src_layer_path: str, dst_layer_path: str, mip: int = 0, chunk_size=None,
    encoding: str | None = None, bounds=None, fill_missing: bool = False, translate=(0, 0, 0),
    dest_voxel_offset=None, agglomerate: bool = False, timestamp=None,
    memory_target: float = MEMORY_TARGET, clean_info: bool = False, truncate_scales: bool = True,
    cutout: bool = False, bounds_mip: int = 0, encoding_level: int | None = None,
    delete_black_uploads: bool = False, background_color: int = 0, compress=None,
    overwrite_info: bool = False,
) -> TaskPlan:
    """Copy ``src`` at ``mip`` into a sharded scale of ``dst``, one shard per
    task (no downsamples: run a sharded downsample afterwards)."""
    setup = transfer_setup(
        src_layer_path, dst_layer_path, mip=mip, chunk_size=chunk_size, encoding=encoding,
        encoding_level=encoding_level, factor=(2, 2, 1), method="auto", bounds=bounds,
        bounds_mip=bounds_mip, translate=translate, dest_voxel_offset=dest_voxel_offset,
        cutout=cutout, truncate_scales=truncate_scales, clean_info=clean_info,
    )
    mip, planned = setup.mip, setup.planned
    channels = int(planned.get("num_channels", 1))
    scale = planned["scales"][mip]
    scale["sharding"] = shard_spec(scale, setup.dtype, channels, memory_target / MEMORY_OVERHEAD)
    dest = prepare_dest(setup.dest_path, planned, mip, overwrite_info)
    origin, step = scale_bounds(dest.info, mip)[0], shard_shape(dest.info, mip)
    if np.any(step % chunk_of(dest.info, mip)):
        raise UserError("shard shape is not a whole number of chunks; choose another --chunk-size")
    kwargs = dict(
        block_options(factor=setup.factor, method=setup.method, sparse=False,
                      fill_missing=fill_missing, delete_black_uploads=delete_black_uploads,
                      background_color=background_color,
                      compress=_shard_file_compression(compress), agglomerate=agglomerate,
                      timestamp=timestamp),
        src_path=setup.src_path, dest_path=setup.dest_path, mip=mip,
        translate=as_list(setup.translate), num_mips=0,
    )
    lo, hi = setup.dest_lo, setup.dest_hi

    def make():
        for a, b in grid(lo, hi, origin, step):
            yield Task.of(transfer, dict(kwargs, offset=as_list(a), shape=as_list(b - a)))

    return TaskPlan(make, grid_count(lo, hi, origin, step), f"sharded transfer mip {mip}")
