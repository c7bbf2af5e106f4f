"""Planning a spatial index of existing meshes or skeletons (``igneous mesh
spatial-index create``): one task per box of the index grid."""

from __future__ import annotations

from collections.abc import Sequence

from igneous.errors import UserError
from igneous.formats.spatial_index import DEFAULT_INDEX_SHAPE, INFO_KEYS, enable_index, index_grid
from igneous.grid import as_list, grid_count, positive_shape, scale_bounds
from igneous.task_creation.common import TaskPlan
from igneous.tasks import Task
from igneous.tasks.spatial_index import spatial_index


def create_spatial_index_tasks(layer_path: str, kind: str = "mesh", mip: int = 0,
                               shape: Sequence[int] = DEFAULT_INDEX_SHAPE,
                               fill_missing: bool = False, sub_dir: str | None = None) -> TaskPlan:
    """Plan tasks that (re)build the spatial index of existing meshes or skeletons."""
    from igneous.layers import load_layer, read_sub_info, write_sub_info

    layer = load_layer(layer_path, mip)
    info = layer.info
    if info.get("type") != "segmentation":
        raise UserError(f"{layer.cloudpath} is not a segmentation layer (type {info.get('type')!r})")
    shape = positive_shape(shape)
    key = INFO_KEYS[kind]
    sub_dir = sub_dir or info.get(key) or (f"mesh_mip_{mip}" if kind == "mesh" else f"skeletons_mip_{mip}")
    if key not in info:
        info = dict(info, **{key: sub_dir})
        layer.update(info)
    index_dir = f"{layer.cloudpath}/{sub_dir}"
    sub_info = read_sub_info(layer.cloudpath, sub_dir) or {}
    if kind == "mesh":
        sub_info.setdefault("@type", "neuroglancer_legacy_mesh")
    sub_info.setdefault("mip", mip)
    res = info["scales"][mip]["resolution"]
    enable_index(sub_info, res, shape)
    write_sub_info(layer.cloudpath, sub_dir, sub_info)
    start, stop = scale_bounds(info, mip)

    def make():
        for lo, hi in index_grid(info, mip, shape):
            yield Task.of(spatial_index, dict(layer_path=layer.cloudpath, mip=mip, lo=as_list(lo),
                                              hi=as_list(hi), index_dir=index_dir,
                                              fill_missing=fill_missing))

    return TaskPlan(make, grid_count(start, stop, start, shape), f"{kind} spatial index")
