"""Planner for moving z-slices into a new order (a checked permutation)."""

from __future__ import annotations

import json
import os

from igneous import validate
from igneous.errors import UserError
from igneous.grid import scale_bounds
from igneous.layers import resolve_mip
from igneous.task_creation.common import TaskPlan
from igneous.task_creation.derived import block_plan, block_step, derived_layer
from igneous.tasks.reorder import reorder


def read_z_mapping(mapping) -> dict[int, int]:
    """``{src_z: dest_z}`` from a dict or a JSON file path, keys as integers."""
    if isinstance(mapping, (str, os.PathLike)):
        path = os.fspath(mapping)
        try:
            with open(path) as f:
                mapping = json.load(f)
        except FileNotFoundError:
            raise UserError(f"mapping file {path} does not exist") from None
        except ValueError as e:
            raise UserError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(mapping, dict):
        raise UserError('the z mapping must be a JSON object like {"1": 2, "2": 1}')
    out = {}
    for k, v in mapping.items():
        try:
            if isinstance(v, (bool, float)) or isinstance(k, float):
                raise ValueError
            out[int(k)] = int(v)
        except (TypeError, ValueError):
            raise UserError(f"z mapping entry {k!r}: {v!r} must map an integer z to an "
                            "integer z") from None
    return out


def z_sources(mapping: dict[int, int], z_start: int, z_stop: int) -> list[int]:
    """For each destination z in [z_start, z_stop), the source z that lands
    there; slices not in ``mapping`` stay put. Refuses (naming the slices)
    any mapping that would lose a slice or write two into one place."""
    outside = sorted(z for pair in mapping.items() for z in pair if not z_start <= z < z_stop)
    if outside:
        raise UserError(f"z mapping mentions z={outside[0]}, outside the volume's z range "
                        f"{z_start}..{z_stop - 1}")
    landing: dict[int, list[int]] = {}
    for z in range(z_start, z_stop):
        landing.setdefault(mapping.get(z, z), []).append(z)
    clashes = {d: s for d, s in landing.items() if len(s) > 1}
    if clashes:
        dest, srcs = min(clashes.items())
        lost = [z for z in range(z_start, z_stop) if z not in landing]
        raise UserError(
            f"z mapping puts slices {', '.join(map(str, srcs))} all at z={dest} (duplicated), "
            f"so z={', '.join(map(str, lost))} would be left empty; every slice must move to a "
            "distinct z (also move the slice already there)"
        )
    return [landing[z][0] for z in range(z_start, z_stop)]


def create_reordering_tasks(
    src: str, dest: str, mapping, mip: int = 0, shape=None, fill_missing: bool = False,
    encoding: str | None = None, compress: str | None = "gzip",
    delete_black_uploads: bool = False, background_color: int = 0,
    overwrite_info: bool = False,
) -> TaskPlan:
    """Copy ``src`` to ``dest`` at ``mip`` with z-slices moved by ``mapping``
    ({src_z: dest_z}, voxel coordinates at ``mip``; a dict or JSON path)."""
    z_map = read_z_mapping(mapping)
    layer = validate.load_layer(src, mip)
    mip = resolve_mip(layer, mip)
    start, stop = scale_bounds(layer.info, mip)
    sources = z_sources(z_map, int(start[2]), int(stop[2]))  # checked before anything is written
    d = derived_layer(src, dest, mip, encoding=encoding, overwrite_info=overwrite_info)
    kwargs = dict(fill_missing=bool(fill_missing), compress=compress,
                  delete_black_uploads=bool(delete_black_uploads),
                  background_color=int(background_color))
    z0 = int(start[2])

    def slab(a, b) -> dict:
        return {"sources": sources[int(a[2]) - z0:int(b[2]) - z0]}

    return block_plan(reorder, d, block_step(d, shape), kwargs, f"reorder z at mip {mip}",
                      extra=slab)
