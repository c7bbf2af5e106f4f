"""Planners for per-label voxel counts (see igneous.tasks.voxels)."""

from __future__ import annotations

from collections.abc import Sequence

from igneous import validate
from igneous.errors import UserError
from igneous.grid import (
    Grid,
    as_list,
    box_name,
    grid,
    positive_shape,
    scale_bounds,
    vec,
)
from igneous.layers import normalize_path, resolve_mip
from igneous.task_creation.common import (
    DEFAULT_MEMORY_TARGET,
    GridPlan,
    TaskPlan,
    box_cell,
    fit_shape,
)
from igneous.tasks.voxels import (
    COUNTS_DIR,
    MANIFEST,
    RESULT,
    count_voxels,
    intmap_bytes,
    sum_blocks,
)

DEFAULT_SHAPE = (256, 256, 256)
BYTES_PER_VOXEL = 16  # peak per voxel of a counting task (block + unique/counts), for --memory


def _open(cloudpath: str, mip: int) -> tuple[str, dict, int, str]:
    cloudpath = normalize_path(cloudpath)
    layer = validate.load_layer(cloudpath, mip)
    mip = resolve_mip(layer, mip)
    return cloudpath, layer.info, mip, layer.info["scales"][mip]["key"]


def create_voxel_counting_tasks(cloudpath: str, mip: int = 0, fill_missing: bool = False,
                                agglomerate: bool = False, timestamp: int | None = None,
                                shape: Sequence[int] = DEFAULT_SHAPE,
                                memory_target: float = DEFAULT_MEMORY_TARGET) -> TaskPlan:
    """Tasks counting each label's voxels per block; then ``accumulate_voxel_counts``.

    Starts a new count: earlier per-block files of this mip are deleted.
    """
    from igneous.storage import open_store

    cloudpath, info, mip, key = _open(cloudpath, mip)
    if info.get("num_channels", 1) != 1:
        raise UserError(f"{cloudpath} has {info['num_channels']} channels; voxel counts need one")
    if info["data_type"] not in ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"):
        raise UserError(f"{cloudpath} holds {info['data_type']}: voxel counts are per integer label")
    step = positive_shape(shape)
    start, stop = scale_bounds(info, mip)
    step = vec(fit_shape(step, memory_target, BYTES_PER_VOXEL, what="voxel count",
                         limit=stop - start))
    cf = open_store(cloudpath)
    cf.delete(list(cf.list(f"{key}/{COUNTS_DIR}/")))
    cf.put_json(f"{key}/{MANIFEST}", {"shape": as_list(step), "bounds": [as_list(start), as_list(stop)]})
    opts = dict(cloudpath=cloudpath, mip=mip, fill_missing=fill_missing, agglomerate=agglomerate,
                timestamp=timestamp)

    return GridPlan(box_cell, Grid(start, stop, start, step), opts, "count voxels",
                    task=count_voxels.__name__)


def accumulate_voxel_counts(cloudpath: str, mip: int = 0, progress: bool = True,
                            compress: str | None = None,
                            additional_output: str | None = None) -> int:
    """Sum the per-block counts into ``KEY/stats/voxel_counts.im`` (a MapBuffer
    IntMap: label -> voxels); also write it to ``additional_output`` locally.
    Returns the number of labels."""
    from igneous.storage import open_store

    cloudpath, info, mip, key = _open(cloudpath, mip)
    cf = open_store(cloudpath)
    manifest = cf.get_json(f"{key}/{MANIFEST}")
    if manifest is None:
        raise UserError(f"no voxel counts of {cloudpath} mip {mip}: run `igneous image voxels count` "
                        "and execute its tasks first")
    start, stop = (vec(b) for b in manifest["bounds"])
    step = vec(manifest["shape"])
    keys = (f"{key}/{COUNTS_DIR}/{box_name(lo, vec(hi).clip(None, stop))}.npz"
            for lo, hi in grid(start, stop, start, step))
    labels, counts = sum_blocks(cloudpath, keys, progress=progress)
    data = intmap_bytes(labels, counts)
    cf.put(f"{key}/{RESULT}", data, compress=compress)
    if additional_output:
        try:
            with open(additional_output, "wb") as f:
                f.write(data)
        except OSError as e:
            raise UserError(f"cannot write {additional_output}: {e.strerror}") from None
    return int(labels.size)
