"""Planners for contrast work on uint8/uint16 images: per-slice histograms,
histogram-clipped stretching, and CLAHE."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from igneous import validate
from igneous.errors import UserError
from igneous.grid import as_list, grid, grid_count, positive_shape, scale_bounds, vec
from igneous.layers import LayerInfo, normalize_path, resolve_mip
from igneous.task_creation.common import TaskPlan
from igneous.task_creation.derived import block_plan, block_step, derived_layer, require_image
from igneous.tasks import Task
from igneous.tasks.contrast import clahe, contrast_normalize, luminance_levels

_check_image = require_image("contrast work (histogram, equalize, clahe)", "u")


def _check_contrast(layer: LayerInfo) -> None:
    _check_image(layer)
    validate.single_channel(layer.info, layer.cloudpath, "contrast correction")
    if layer.dtype not in (np.uint8, np.uint16):
        raise UserError(f"contrast work needs uint8 or uint16 images; {layer.cloudpath} is "
                        f"{layer.dtype} (quantize it to uint8 first)")


def create_luminance_levels_tasks(
    layer_path: str, levels_path: str | None = None, coverage_factor: float = 0.01, shape=None,
    offset=(0, 0, 0), mip: int = 0, bounds_mip: int = 0, bounds=None,
    fill_missing: bool = False,
) -> TaskPlan:
    """Tasks histogramming every z-slice of ``mip`` from a ``coverage_factor``
    sample of its xy chunk columns; results go to ``levels/{mip}/{z}``.

    ``shape`` (x, y, z) sets the sampled patch (x, y) and the slab depth (z);
    ``offset`` shifts the region's start (as the original's keyword does).
    """
    from igneous.task_creation.image import bounds_box

    if not 0 < float(coverage_factor) <= 1:
        raise UserError(f"coverage must be in (0, 1], not {coverage_factor}")
    layer_path = normalize_path(layer_path)
    layer = validate.load_layer(layer_path, mip)
    mip = resolve_mip(layer, mip)
    _check_contrast(layer)
    info = layer.info
    lo, hi = bounds_box(bounds, info, bounds_mip, mip)
    lo = np.maximum(lo, vec(offset))
    if np.any(hi <= lo):
        raise UserError(f"offset {as_list(vec(offset))} lies past the volume's end {as_list(hi)}")
    chunk = vec(info["scales"][mip]["chunk_sizes"][0])
    column = positive_shape(shape) if shape is not None else chunk
    origin = scale_bounds(info, mip)[0]
    step = vec((hi[0] - lo[0], hi[1] - lo[1], column[2]))
    kwargs = dict(layer_path=layer_path, levels_path=normalize_path(levels_path or layer_path),
                  mip=mip, coverage=float(coverage_factor), column=as_list(column),
                  fill_missing=bool(fill_missing))
    z_origin = vec((lo[0], lo[1], origin[2]))

    def make() -> Iterator[Task]:
        for a, b in grid(lo, hi, z_origin, step):
            a, b = np.maximum(a, lo), np.minimum(b, hi)
            yield Task.of(luminance_levels, dict(kwargs, offset=as_list(a), shape=as_list(b - a)))

    return TaskPlan(make, grid_count(lo, hi, z_origin, step), f"luminance levels mip {mip}")


def _missing_levels(levels_path: str, mip: int, z_range: range) -> list[int]:
    from igneous.storage import open_store
    from igneous.tasks.contrast import LEVELS_DIR

    prefix = f"{LEVELS_DIR}/{mip}/"
    have = set()
    for name in open_store(levels_path).list(prefix=prefix):
        tail = name[len(prefix):]
        if tail.isdigit():
            have.add(int(tail))
    return [z for z in z_range if z not in have]


def create_contrast_normalization_tasks(
    src_path: str, dest_path: str, levels_path: str | None = None, shape=None, mip: int = 0,
    clip_fraction: float = 0.01, fill_missing: bool = False, translate=(0, 0, 0),
    minval: int | None = None, maxval: int | None = None, bounds=None, bounds_mip: int = 0,
    compress: str | None = "gzip", overwrite_info: bool = False,
) -> TaskPlan:
    """Tasks writing ``dest_path``: each z-slice of ``src_path`` with
    ``clip_fraction`` of its histogram (black left out) clipped at each end
    and the rest stretched over the dtype's range, as the original Igneous
    does; ``minval`` / ``maxval`` replace the histogram's bounds. Needs the
    histogram step first."""
    if not 0 <= float(clip_fraction) < 0.5:
        raise UserError(f"clip fraction must be in [0, 0.5), not {clip_fraction}")
    src_path = normalize_path(src_path)
    levels_path = normalize_path(levels_path or src_path)
    layer = validate.load_layer(src_path, mip)
    mip = resolve_mip(layer, mip)
    _check_contrast(layer)
    top = int(np.iinfo(layer.dtype).max)
    for name, v in (("minval", minval), ("maxval", maxval)):
        if v is not None and not 0 <= int(v) <= top:
            raise UserError(f"{name} {v} is outside the {layer.dtype} range 0..{top}")
    if minval is not None and maxval is not None and int(maxval) <= int(minval):
        raise UserError(f"maxval ({maxval}) must exceed minval ({minval})")
    from igneous.task_creation.image import bounds_box

    lo, hi = bounds_box(bounds, layer.info, bounds_mip, mip)
    missing = _missing_levels(levels_path, mip, range(int(lo[2]), int(hi[2])))
    if missing:
        raise UserError(f"no histogram for z={missing[0]} ({len(missing)} slices lack one) at mip "
                        f"{mip} in {levels_path}; run `igneous image contrast histogram` first")
    d = derived_layer(src_path, dest_path, mip, bounds=bounds, bounds_mip=bounds_mip,
                      translate=translate, overwrite_info=overwrite_info)
    kwargs = dict(levels_path=levels_path, clip_fraction=float(clip_fraction),
                  translate=as_list(vec(translate)), fill_missing=bool(fill_missing),
                  compress=compress, minval=None if minval is None else int(minval),
                  maxval=None if maxval is None else int(maxval))
    return block_plan(contrast_normalize, d, block_step(d, shape), kwargs,
                      f"contrast normalization mip {mip}")


def create_clahe_tasks(
    src_path: str, dest_path: str, shape=None, mip: int = 0, clip_limit: float = 40.0,
    tile_grid_size=(8, 8), fill_missing: bool = False, bounds=None, bounds_mip: int = 0,
    compress: str | None = "gzip", overwrite_info: bool = False,
) -> TaskPlan:
    """Tasks writing the CLAHE of every z-slice of ``src_path`` to
    ``dest_path``. Each task holds whole xy slices (tiles span the slice, so
    no seams); ``shape`` can only choose the slab depth."""
    grid_xy = tuple(int(g) for g in tile_grid_size)
    if len(grid_xy) != 2 or min(grid_xy) < 1:
        raise UserError(f"tile grid size must be two positive integers, not {tile_grid_size}")
    if clip_limit < 0:
        raise UserError(f"clip limit must be >= 0 (0 = no limit), not {clip_limit}")

    def check(layer: LayerInfo) -> None:
        _check_contrast(layer)
        start, stop = scale_bounds(layer.info, resolve_mip(layer, mip))
        if grid_xy[0] > stop[0] - start[0] or grid_xy[1] > stop[1] - start[1]:
            raise UserError(f"tile grid {grid_xy} is finer than the "
                            f"{stop[0] - start[0]}x{stop[1] - start[1]} slice")

    d = derived_layer(src_path, dest_path, mip, bounds=bounds, bounds_mip=bounds_mip,
                      check=check, overwrite_info=overwrite_info)
    step = block_step(d, full_xy=True)
    if shape is not None:
        depth, chunk_z = int(vec(shape)[2]), int(d.dest.info["scales"][d.mip]["chunk_sizes"][0][2])
        if depth <= 0 or depth % chunk_z:
            raise UserError(f"shape z ({depth}) must be a positive multiple of the chunk depth "
                            f"{chunk_z}; CLAHE tasks always take whole xy slices")
        step[2] = depth
    kwargs = dict(clip_limit=float(clip_limit), tile_grid_size=list(grid_xy),
                  fill_missing=bool(fill_missing), compress=compress)
    return block_plan(clahe, d, step, kwargs, f"clahe mip {d.mip}", full_xy=True)
