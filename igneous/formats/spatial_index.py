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
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported lazily: `igneous --help` must stay fast
    import numpy as np

    from igneous.grid import Coords, Floats

Box = tuple  # (lo, hi) numpy int vectors
INFO_KEYS = {"mesh": "mesh", "skeleton": "skeletons"}
DEFAULT_INDEX_SHAPE = (448, 448, 448)


def label_boxes(labels: np.ndarray, offset: Coords = (0, 0, 0)) -> dict[int, Box]:
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


def _norm_res(resolution: Floats) -> list:
    """Integral resolutions as ints (16.0 -> 16): file names must not depend on
    whether the resolution came from JSON or from CloudVolume's float vector."""
    return [int(r) if float(r).is_integer() else float(r) for r in resolution]


def _decimals(x: float | int) -> int:
    """Digits after the decimal point of ``str(x)`` (0 for ints and exponent forms)."""
    text = str(x)
    return len(text.split(".", 1)[1]) if "." in text else 0


def _precision(resolution: Floats) -> int:
    """Decimals the file names carry: as many as the most precise resolution
    component has (CloudVolume's rule; computed here so forge tasks need not
    import CloudVolume, ~0.8 s and ~75 MB per worker)."""
    return max(_decimals(r) for r in _norm_res(resolution))


def _physical(v: Floats, resolution: Floats) -> list:
    """Voxel coordinates -> physical, as ints when the resolution is integral
    (CloudVolume names the files the same way)."""
    import numpy as np

    prec = _precision(resolution)
    phys = np.asarray(v, dtype=np.float64) * np.asarray(resolution, dtype=np.float64)
    if prec == 0:
        return [int(round(x)) for x in phys]
    return [round(float(x), prec) for x in phys]


def index_filename(lo: Coords, hi: Coords, resolution: Floats) -> str:
    """Name of the index file for the voxel box [lo, hi), as CloudVolume computes it."""
    prec = _precision(resolution)

    def render(x: float | int) -> str:
        return f"{round(x, prec):.{prec}f}" if prec else str(x)

    return "_".join(f"{render(a)}-{render(b)}" for a, b in
                    zip(_physical(lo, resolution), _physical(hi, resolution))) + ".spatial"


def write_index(dir_path: str, lo: Coords, hi: Coords, resolution: Floats,
                boxes: dict[int, Box]) -> None:
    """Write the index file of the task box [lo, hi) into directory ``dir_path``."""
    put_index(dir_path, lo, hi, resolution, {
        str(int(label)): _physical(blo, resolution) + _physical(bhi, resolution)
        for label, (blo, bhi) in boxes.items()
    })


def put_index(dir_path: str, lo: Coords, hi: Coords, resolution: Floats,
              content: dict[str, list]) -> None:
    """Write an index file whose ``content`` ({"LABEL": physical [x0, y0, z0,
    x1, y1, z1]}) is already computed (``write_index`` computes it from voxel boxes)."""
    from igneous.storage import open_store

    open_store(dir_path).put(
        index_filename(lo, hi, resolution),
        json.dumps(content, separators=(",", ":")).encode("utf8"),
        compress="gzip", content_type="application/json",
    )


def enable_index(sub_info: dict, resolution: Floats, task_shape: Coords) -> None:
    """Declare in a mesh/skeleton info that a spatial index of ``task_shape`` tasks exists."""
    sub_info["spatial_index"] = {
        "resolution": _norm_res(resolution),
        "chunk_size": _physical(task_shape, resolution),
    }


def _open_index(dir_path: str):
    """CloudVolume's SpatialIndex reader for ``dir_path`` (a mesh/skeleton directory)."""
    import numpy as np
    from cloudvolume.datasource.precomputed.spatial_index import SpatialIndex
    from cloudvolume.lib import Bbox

    from igneous.errors import UserError
    from igneous.layers import LayerInfo, read_sub_info
    from igneous.storage import open_store

    dir_path = dir_path.rstrip("/")
    sub = read_sub_info(dir_path)
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
        # read through our Store (the base class's fetch expects an older
        # cloud-files result layout)
        def fetch_index_files(self, index_files, progress=None):
            out = {}
            for path, data in open_store(self.cloudpath).get_many(list(index_files)):
                if data is None:
                    raise UserError(f"cannot read spatial index file {path}: it does not exist")
                out[path] = data
            return out

    index = _Index(dir_path, bounds, sub["spatial_index"]["chunk_size"], config=_Config(),
                   resolution=res)
    return index, np.asarray(res, dtype=np.float64)


def query(dir_path: str, bbox_lo: Coords | None = None, bbox_hi: Coords | None = None,
          *, resolution: Floats | None = None, allow_missing: bool = False) -> set[int]:
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


def index_grid(info: dict, mip: int, shape: Coords) -> Iterator[Box]:
    """The task boxes of a spatial index: anchored at the voxel offset, clipped to bounds."""
    import numpy as np

    from igneous.grid import clip, grid, scale_bounds

    start, stop = scale_bounds(info, mip)
    for lo, hi in grid(start, stop, start, np.asarray(shape)):
        yield clip(lo, hi, start, stop)
