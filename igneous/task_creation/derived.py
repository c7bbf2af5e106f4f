"""What every planner that writes a new layer from an old one block by block
shares (quantize, contrast equalize/CLAHE, remap, reorder): derive the
destination's info from the source, then cover it with a grid of
chunk-aligned blocks, each one task."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from igneous import validate
from igneous.errors import UserError
from igneous.grid import as_list, grid, grid_count, positive_shape, scale_bounds, vec
from igneous.layers import LayerInfo, check_encoding, normalize_path, resolve_mip
from igneous.task_creation.common import DEFAULT_MEMORY_TARGET, TaskPlan
from igneous.tasks import Task


@dataclass
class Derived:
    """A checked source and the destination layer made from it."""

    src_path: str
    dest_path: str
    mip: int
    src: LayerInfo
    dest: LayerInfo
    lo: np.ndarray  # destination region at ``mip`` (half-open)
    hi: np.ndarray


def derived_layer(src_path: str, dest_path: str, mip: int, *, bounds=None, bounds_mip: int = 0,
                  translate=None, chunk_size=None, encoding: str | None = None,
                  data_type: str | None = None, layer_type: str | None = None,
                  num_channels: int | None = None, check: Callable[[LayerInfo], None] | None = None,
                  overwrite_info: bool = False) -> Derived:
    """Validate the source (``check`` raises UserError), then create or check
    the destination info: the source's scales up to ``mip``, optionally with a
    new dtype, layer type, channel count, chunk size or encoding."""
    from igneous.task_creation.image import bounds_box, dest_info, prepare_dest

    src_path, dest_path = normalize_path(src_path), normalize_path(dest_path)
    if src_path.rstrip("/") == dest_path.rstrip("/"):
        raise UserError("source and destination are the same layer; give a new destination")
    src = validate.load_layer(src_path, mip)
    mip = resolve_mip(src, mip)
    if check is not None:
        check(src)
    lo, hi = bounds_box(bounds, src.info, bounds_mip, mip)
    info = dict(src.info)
    for key, value in (("data_type", data_type), ("type", layer_type), ("num_channels", num_channels)):
        if value is not None:
            info[key] = value
    check_encoding(encoding, info["data_type"], info.get("type", "image"))
    translate = vec(translate if translate is not None else (0, 0, 0))
    keep = (lo, hi) if bounds is not None else scale_bounds(src.info, mip)
    planned = dest_info(
        info, mip, chunk=vec(chunk_size) if chunk_size is not None else None, encoding=encoding,
        encoding_level=None, translate=translate, bounds_lo=keep[0], bounds_hi=keep[1],
        truncate_scales=True, clean_info=True,
    )
    planned["scales"][0].pop("rois", None)  # the source's tissue boxes may not hold here
    dest = prepare_dest(dest_path, planned, mip, overwrite_info)
    return Derived(src_path, dest_path, mip, src, dest, lo + translate, hi + translate)


def block_step(d: Derived, shape=None, *, full_xy: bool = False,
               memory_target: float = DEFAULT_MEMORY_TARGET) -> np.ndarray:
    """Task shape: ``shape`` (checked to be chunk multiples), or a default that
    batches chunks up to the memory target (``full_xy``: whole xy slices)."""
    from igneous.task_creation.image import grow_shape

    info = d.dest.info
    chunk = vec(info["scales"][d.mip]["chunk_sizes"][0])
    if shape is not None:
        step = positive_shape(shape)
        if np.any(step % chunk):
            raise UserError(f"shape {as_list(step)} must be a multiple of the destination "
                            f"chunk size {as_list(chunk)}")
        return step
    itemsize = max(np.dtype(d.src.info["data_type"]).itemsize, np.dtype(info["data_type"]).itemsize)
    channels = int(d.src.info.get("num_channels", 1))
    if full_xy:
        extent = -(-(d.hi - d.lo) // chunk) * chunk
        return vec((extent[0], extent[1], chunk[2]))
    return grow_shape(chunk, itemsize, channels, memory_target, d.hi - d.lo)


def block_plan(task: Callable[..., Any], d: Derived, step, kwargs: dict, description: str,
               extra: Callable[[np.ndarray, np.ndarray], dict] | None = None,
               full_xy: bool = False) -> TaskPlan:
    """One ``name`` task per grid cell of ``step`` over the destination region
    (anchored at the destination's voxel offset, so every chunk is whole;
    ``full_xy``: anchored at the region's xy start, one cell per z slab)."""
    origin = scale_bounds(d.dest.info, d.mip)[0]
    if full_xy:
        origin = vec((d.lo[0], d.lo[1], origin[2]))
    step = vec(step)
    base = dict(kwargs, src_path=d.src_path, dest_path=d.dest_path, mip=d.mip)

    def make() -> Iterator[Task]:
        for a, b in grid(d.lo, d.hi, origin, step):
            a, b = np.maximum(a, d.lo), np.minimum(b, d.hi)
            more = extra(a, b) if extra is not None else {}
            yield Task.of(task, dict(base, offset=as_list(a), shape=as_list(b - a), **more))

    return TaskPlan(make, grid_count(d.lo, d.hi, origin, step), description)


def require_image(what: str, kinds: str = "ui") -> Callable[[LayerInfo], None]:
    """A source check: an image layer whose dtype kind is in ``kinds``."""

    def check(layer: LayerInfo) -> None:
        if layer.info.get("type", "image") == "segmentation":
            raise UserError(f"{what} is for image layers; {layer.cloudpath} is a segmentation")
        if layer.dtype.kind not in kinds:
            raise UserError(f"{what} cannot take {layer.dtype} data from {layer.cloudpath}")

    return check
