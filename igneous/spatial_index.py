"""Spatial index of meshes and skeletons: which labels lie in which task box.

Each forge task writes one JSON file named after its physical bounding box,
``x0-x1_y0-y1_z0-z1.spatial``, mapping every label it saw to that label's
physical bounding box ``[x0, y0, z0, x1, y1, z1]``. The mesh/skeleton info
gets ``"spatial_index": {"resolution": ..., "chunk_size": ...}`` (physical task
shape), which is how CloudVolume's ``SpatialIndex`` finds the files: a grid
anchored at the layer's voxel offset with the task shape as step, clipped to
the layer bounds. Task grids must therefore use the same anchor and step.

Labels are JSON object keys (strings), so uint64 ids above 2**53 survive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import click

from igneous.tasks import register

if TYPE_CHECKING:  # numpy is imported lazily: `igneous --help` must stay fast
    import numpy as np

Box = tuple  # (lo, hi) numpy int vectors
INFO_KEYS = {"mesh": "mesh", "skeleton": "skeletons"}
DEFAULT_INDEX_SHAPE = (448, 448, 448)


def label_boxes(labels: np.ndarray, offset: Sequence[int] = (0, 0, 0)) -> dict[int, Box]:
    """Voxel bounding box [lo, hi) of every nonzero label, in global voxel coordinates.

    ``offset`` is the global coordinate of ``labels[0, 0, 0]``. Exact for any
    uint64 id: labels are renumbered before cc3d computes the boxes.
    """
    import cc3d
    import fastremap
    import numpy as np

    labels = np.asarray(labels)
    if labels.ndim == 4:
        labels = labels[..., 0]
    if labels.size == 0:
        return {}
    renumbered, mapping = fastremap.renumber(labels, in_place=False, preserve_zero=True)
    stats = cc3d.statistics(np.asfortranarray(renumbered), no_slice_conversion=True)
    bbx = np.asarray(stats["bounding_boxes"], dtype=np.int64)
    counts = stats["voxel_counts"]
    off = np.asarray(offset, dtype=np.int64).reshape(3)
    out: dict[int, Box] = {}
    for label, idx in mapping.items():
        if label == 0 or idx >= len(counts) or counts[idx] == 0:
            continue
        b = bbx[idx]
        lo = off + np.array([b[0], b[2], b[4]], dtype=np.int64)
        hi = off + np.array([b[1], b[3], b[5]], dtype=np.int64) + 1
        out[int(label)] = (lo, hi)
    return out


def _norm_res(resolution: Sequence[float]) -> list:
    """Integral resolutions as ints (16.0 -> 16): file names must not depend on
    whether the resolution came from JSON or from CloudVolume's float vector."""
    return [int(r) if float(r).is_integer() else float(r) for r in resolution]


def _precision(resolution: Sequence[float]) -> int:
    from cloudvolume.lib import getprecision

    return max(getprecision(r) for r in _norm_res(resolution))


def _physical(v: Sequence[float], resolution: Sequence[float]) -> list:
    """Voxel coordinates -> physical, as ints when the resolution is integral
    (CloudVolume names the files the same way)."""
    import numpy as np

    prec = _precision(resolution)
    phys = np.asarray(v, dtype=np.float64) * np.asarray(resolution, dtype=np.float64)
    if prec == 0:
        return [int(round(x)) for x in phys]
    return [round(float(x), prec) for x in phys]


def index_filename(lo: Sequence[int], hi: Sequence[int], resolution: Sequence[float]) -> str:
    """Name of the index file for the voxel box [lo, hi), as CloudVolume computes it."""
    from cloudvolume.lib import Bbox

    prec = _precision(resolution)
    box = Bbox(_physical(lo, resolution), _physical(hi, resolution))
    return box.to_filename(prec or None) + ".spatial"


def write_index(dir_path: str, lo: Sequence[int], hi: Sequence[int], resolution: Sequence[float],
                boxes: dict[int, Box]) -> None:
    """Write the index file of the task box [lo, hi) into directory ``dir_path``."""
    from cloudfiles import CloudFiles

    content = {
        str(int(label)): _physical(blo, resolution) + _physical(bhi, resolution)
        for label, (blo, bhi) in boxes.items()
    }
    CloudFiles(dir_path).put(
        index_filename(lo, hi, resolution),
        json.dumps(content, separators=(",", ":")).encode("utf8"),
        compress="gzip", content_type="application/json", cache_control=False,
    )


def enable_index(sub_info: dict, resolution: Sequence[float], task_shape: Sequence[int]) -> None:
    """Declare in a mesh/skeleton info that a spatial index of ``task_shape`` tasks exists."""
    sub_info["spatial_index"] = {
        "resolution": _norm_res(resolution),
        "chunk_size": _physical(task_shape, resolution),
    }


def _open_index(dir_path: str):
    """CloudVolume's SpatialIndex reader for ``dir_path`` (a mesh/skeleton directory)."""
    import numpy as np
    from cloudfiles import CloudFiles
    from cloudvolume.datasource.precomputed.spatial_index import SpatialIndex
    from cloudvolume.lib import Bbox

    from igneous.errors import UserError
    from igneous.layers import LayerInfo

    dir_path = dir_path.rstrip("/")
    sub = CloudFiles(dir_path).get_json("info")
    if not sub or "spatial_index" not in sub or not sub["spatial_index"]:
        raise UserError(f"{dir_path} has no spatial index; create one with "
                        "`igneous mesh spatial-index create` (or forge with --spatial-index)")
    layer = LayerInfo(dir_path.rsplit("/", 1)[0])
    mip = int(sub.get("mip", 0) or 0)
    scale = layer.info["scales"][mip]
    res = sub["spatial_index"].get("resolution", scale["resolution"])
    off = np.asarray(scale.get("voxel_offset", (0, 0, 0)), dtype=np.int64)
    bounds = Bbox(off, off + np.asarray(scale["size"], dtype=np.int64))

    class _Config:
        progress = False
        spatial_index_db = None

    class _Index(SpatialIndex):
        # the base class's fetch expects an older CloudFiles result layout
        def fetch_index_files(self, index_files, progress=None):
            results = CloudFiles(self.cloudpath).get(list(index_files))
            for res in results:
                if res["error"] is not None:
                    raise UserError(f"cannot read spatial index file {res['path']}: {res['error']}")
            return {res["path"]: res["content"] for res in results}

    index = _Index(dir_path, bounds, sub["spatial_index"]["chunk_size"], config=_Config(),
                   resolution=res)
    return index, np.asarray(res, dtype=np.float64)


def query(dir_path: str, bbox_lo: Sequence[int] | None = None, bbox_hi: Sequence[int] | None = None,
          *, resolution: Sequence[float] | None = None, allow_missing: bool = False) -> set[int]:
    """Labels whose boxes intersect the voxel box [bbox_lo, bbox_hi) (None: everything).

    ``resolution`` is the voxel size of the given box (default: the index's).
    """
    import numpy as np

    index, res = _open_index(dir_path)
    if bbox_lo is None or bbox_hi is None:
        box = index.physical_bounds
    else:
        from cloudvolume.lib import Bbox

        if resolution is not None:
            res = np.asarray(resolution, dtype=np.float64)
        box = Bbox(np.asarray(bbox_lo) * res, np.asarray(bbox_hi) * res)
    return {int(x) for x in index.query(box, allow_missing=allow_missing)}


def to_sqlite(dir_path: str, db_path: str, *, allow_missing: bool = False,
              progress: bool = False) -> None:
    """Gather every index file of ``dir_path`` into a database (sqlite path or mysql:// url)."""

    index, _ = _open_index(dir_path)
    index.to_sql(db_path, allow_missing=allow_missing, progress=progress)


# ---- standalone indexing (`spatial-index create`) -------------------------------------


@register("spatial_index")
def spatial_index_task(layer_path: str, mip: int, lo: list[int], hi: list[int], index_dir: str,
                       fill_missing: bool = False) -> None:
    """Index the labels of one task box of a segmentation without meshing it."""
    from igneous.chunkio import open_volume
    from igneous.grid import resolution
    from igneous.tasks.pyramid import read_block

    vol = open_volume(layer_path, mip, fill_missing=fill_missing)
    img = read_block(vol, lo, hi, mip)[..., 0]
    write_index(index_dir, lo, hi, resolution(vol.info, mip), label_boxes(img, lo))


def index_grid(info: dict, mip: int, shape: Sequence[int]) -> Iterator[Box]:
    """The task boxes of a spatial index: anchored at the voxel offset, clipped to bounds."""
    import numpy as np

    from igneous.grid import clip, grid, scale_bounds

    start, stop = scale_bounds(info, mip)
    for lo, hi in grid(start, stop, start, np.asarray(shape)):
        yield clip(lo, hi, start, stop)


def create_spatial_index_tasks(layer_path: str, kind: str = "mesh", mip: int = 0,
                               shape: Sequence[int] = DEFAULT_INDEX_SHAPE,
                               fill_missing: bool = False, sub_dir: str | None = None):
    """Plan tasks that (re)build the spatial index of existing meshes or skeletons."""
    import numpy as np
    from cloudfiles import CloudFiles

    from igneous.errors import UserError
    from igneous.grid import as_list, grid_count, scale_bounds
    from igneous.layers import load_layer
    from igneous.task_creation.common import TaskPlan
    from igneous.tasks import Task

    layer = load_layer(layer_path, mip)
    info = layer.info
    if info.get("type") != "segmentation":
        raise UserError(f"{layer.cloudpath} is not a segmentation layer (type {info.get('type')!r})")
    shape = np.asarray(shape, dtype=np.int64)
    if shape.shape != (3,) or np.any(shape <= 0):
        raise UserError("--shape must be three positive integers")
    key = INFO_KEYS[kind]
    sub_dir = sub_dir or info.get(key) or (f"mesh_mip_{mip}" if kind == "mesh" else f"skeletons_mip_{mip}")
    if key not in info:
        info = dict(info, **{key: sub_dir})
        layer.update(info)
    index_dir = f"{layer.cloudpath}/{sub_dir}"
    cf = CloudFiles(index_dir)
    sub_info = cf.get_json("info") or {}
    if kind == "mesh":
        sub_info.setdefault("@type", "neuroglancer_legacy_mesh")
    sub_info.setdefault("mip", mip)
    res = info["scales"][mip]["resolution"]
    enable_index(sub_info, res, shape)
    cf.put_json("info", sub_info)
    start, stop = scale_bounds(info, mip)

    def make():
        for lo, hi in index_grid(info, mip, shape):
            yield Task("spatial_index", dict(layer_path=layer.cloudpath, mip=mip, lo=as_list(lo),
                                             hi=as_list(hi), index_dir=index_dir,
                                             fill_missing=fill_missing))

    return TaskPlan(make, grid_count(start, stop, start, shape), f"{kind} spatial index")


def spatial_index_group(kind: str) -> click.Group:
    """``spatial-index create|db`` for ``igneous mesh`` (kind "mesh") or ``igneous skeleton``."""
    if kind not in INFO_KEYS:
        raise ValueError(f"kind must be one of {sorted(INFO_KEYS)}")
    noun = "mesh" if kind == "mesh" else "skeleton"

    @click.group("spatial-index")
    def group() -> None:
        """Create or download the spatial index (labels by bounding box)."""

    @group.command("create")
    @click.argument("path")
    @click.option("--queue", default=None,
                  help="Queue to put tasks in (directory, fq://DIR, sqs://NAME). Omit to run now with -p.")
    @click.option("--shape", default="448,448,448", show_default=True,
                  help="Task shape in voxels (also the index's chunk size).")
    @click.option("--mip", default=0, show_default=True, type=int, help="Index at this mip.")
    @click.option("--fill-missing", is_flag=True, help="Read missing chunks as background.")
    @click.pass_context
    def create(ctx, path, queue, shape, mip, fill_missing):
        from igneous.cli import enqueue_or_run
        from igneous.layers import parse_triple

        plan = create_spatial_index_tasks(path, kind, mip, parse_triple(shape, "--shape"),
                                          fill_missing)
        enqueue_or_run(ctx, queue, [plan], what="indexing tasks")

    @group.command("db")
    @click.argument("path")
    @click.argument("database")
    @click.option("--progress", is_flag=True, help="Show progress bars.")
    @click.option("--allow-missing", is_flag=True, help="Skip missing index files.")
    def db(path, database, progress, allow_missing):
        """Gather the spatial index into a database: sqlite://FILE.db (or FILE.db), mysql://..."""
        from igneous.layers import LayerInfo

        layer = LayerInfo(path)
        key = INFO_KEYS[kind]
        sub = layer.info.get(key)
        if not sub:
            from igneous.errors import UserError

            raise UserError(f"{layer.cloudpath} has no {key} directory in its info")
        to_sqlite(f"{layer.cloudpath}/{sub}", database, allow_missing=allow_missing,
                  progress=progress)
        click.echo(f"Wrote the {noun} spatial index of {layer.cloudpath} to {database}", err=True)

    create.help = f"Create a spatial index for existing {noun} files without recomputing them."
    return group
