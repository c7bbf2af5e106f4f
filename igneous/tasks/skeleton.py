"""Skeleton forge: skeletonize one block of a segmentation with kimimaro.

Blocks overlap their high neighbours by one voxel and kimimaro runs with
``fix_borders``, so both sides of a seam place identical vertices on the
shared voxel plane; the merge fuses the pieces there.

Scratch layout inside the skeleton directory (removed by ``skeleton clean``)::

    .frags/forge.json            forge parameters (grid, buckets, attributes)
    .frags/ball.json             TEASAR's invalidation ball (scale, const), for
                                 the merge's seam spur pruning
    .frags/BBBBB/x0-x1_..frags   one MapBuffer per (bucket, block): label -> fragment
    .frags/tasks/x0-x1_...labels the labels a block skeletonized; written last,
                                 so its presence proves the block's fragments exist

A label's bucket is ``label % buckets``: a merge task reads only its own
buckets' files, so merge memory is bounded by one bucket, not the volume.

Fragment vertices on a shared face carry ``vertex_types == SEAM`` so the merge
can tell branches made by a seam from the others (it resets them to 0).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from igneous.grid import Vec, box_name, scale_bounds, vec

FRAG_DIR = ".frags"
FORGE_META = f"{FRAG_DIR}/forge.json"
TASK_DIR = f"{FRAG_DIR}/tasks"
BALL_FILE = f"{FRAG_DIR}/ball.json"
SEAM = 1  # vertex_types of a fragment vertex on a block face shared with a neighbour

BASE_ATTRIBUTES = [
    {"id": "radius", "data_type": "float32", "num_components": 1},
    {"id": "vertex_types", "data_type": "uint8", "num_components": 1},
]
AREA_ATTRIBUTE = {"id": "cross_sectional_area", "data_type": "float32", "num_components": 1}


def bucket_dir(bucket: int) -> str:
    return f"{FRAG_DIR}/{int(bucket):05d}/"


def bucket_files(cf: Any) -> dict[int, list[str]]:
    """{bucket: its forge fragment files} (the merge's scratch under FRAG_DIR
    left out), in listing order."""
    out: dict[int, list[str]] = {}
    for p in cf.list(prefix=f"{FRAG_DIR}/"):
        top = p[len(FRAG_DIR) + 1:].split("/", 1)[0]
        if p.endswith(".frags") and top.isdigit():
            out.setdefault(int(top), []).append(p)
    return out


def bucket_of(label: int, buckets: int, digits: int = 0) -> int:
    """``label % buckets``; with ``digits``, the label's first ``digits`` decimal
    digits instead (the original Igneous's merge tasks split labels by decimal
    prefix: igneous.compat.skeletons)."""
    if digits:
        return int(str(int(label))[:digits])
    return int(label) % int(buckets)


def vertex_attributes(cross_sectional_area: bool) -> list[dict]:
    return BASE_ATTRIBUTES + ([AREA_ATTRIBUTE] if cross_sectional_area else [])


def encode_skeletons(skels: dict[int, Any]) -> bytes:
    """label -> Skeleton as one gzip MapBuffer of precomputed skeleton bytes."""
    from mapbuffer import MapBuffer

    return MapBuffer({int(k): s.to_precomputed() for k, s in skels.items()},
                     compress="gzip").tobytes()


def decode_skeleton(raw: bytes, label: int, attributes: list[dict]) -> Any:
    """One fragment of ``encode_skeletons``'s MapBuffer as a Skeleton."""
    from cloudvolume import Skeleton

    return Skeleton.from_precomputed(raw, segid=int(label), vertex_attributes=attributes)


def read_meta(skel_url: str) -> dict | None:
    """The forge parameters, or None when forge never ran here."""
    from igneous.storage import open_store

    return open_store(skel_url).get_json(FORGE_META)


def shared_faces(lo: Vec, hi: Vec, start: Vec, stop: Vec) -> list[tuple[int, int]]:
    """(axis, index) of the block faces shared with a neighbouring block."""
    faces = []
    for axis in range(3):
        if lo[axis] > start[axis]:
            faces.append((axis, 0))
        if hi[axis] < stop[axis]:
            faces.append((axis, int(hi[axis] - lo[axis]) - 1))
    return faces


def mark_seam_vertices(skel: Any, res: np.ndarray, faces: list[tuple[int, int]]) -> None:
    """Set ``vertex_types`` to SEAM on the vertices (block voxel coordinates
    times ``res``) lying on one of the shared ``faces``."""
    vox = np.round(skel.vertices / res).astype(np.int64)
    on = np.zeros(len(vox), dtype=bool)
    for axis, index in faces:
        on |= vox[:, axis] == index
    skel.vertex_types = np.where(on, SEAM, 0).astype(np.uint8)


def invalidation_ball(teasar_params: dict) -> dict:
    """TEASAR's invalidation ball radius is ``scale * DBF + const`` (nm); the
    values kimimaro.trace uses for the parameters left out."""
    import inspect

    import kimimaro.trace

    defaults = inspect.signature(kimimaro.trace.trace).parameters
    return {k: float(teasar_params.get(k, defaults[k].default)) for k in ("scale", "const")}


def remove_local_dust(labels: np.ndarray, threshold: int, faces: list[tuple[int, int]]) -> np.ndarray:
    """Erase components under ``threshold`` voxels that lie wholly inside the block.

    kimimaro's own dust filter would also drop the small end of a large object
    that merely pokes into this block, leaving a gap in the fused skeleton;
    components touching a shared face are therefore kept whatever their size.
    """
    import cc3d
    import fastremap

    if threshold <= 0 or not labels.any():
        return labels
    cc, n = cc3d.connected_components(labels, connectivity=26, return_N=True)
    counts = np.bincount(cc.ravel(order="K"), minlength=n + 1)
    small = counts < threshold
    small[0] = False
    for axis, index in faces:
        face = np.take(cc, index, axis=axis)
        small[fastremap.unique(face)] = False
    if not small.any():
        return labels
    return np.where(small[cc], 0, labels).astype(labels.dtype, copy=False)


def skeleton_forge(layer_path: str, skel_dir: str, mip: int, offset: Sequence[int],
                   shape: Sequence[int], teasar_params: dict, buckets: int,
                   object_ids: Sequence[int] | None = None, mask_ids: Sequence[int] | None = None,
                   fix_branching: bool = True, fix_borders: bool = True,
                   fix_avocados: bool = False, fill_holes: bool = False,
                   dust_threshold: int = 1000, fill_missing: bool = False, parallel: int = 1,
                   spatial_index: bool = True, cross_sectional_area: bool = False,
                   cross_sectional_area_smoothing_window: int = 5,
                   dust_global: bool = False, bucket_digits: int = 0) -> None:
    """Skeletonize the block [offset, offset + shape) plus one voxel of overlap
    and write its fragments (physical coordinates) bucketed by label
    (``dust_global``: labels under ``dust_threshold`` voxels in the whole
    volume are skipped, by the layer's voxel counts, instead of local dust;
    ``bucket_digits``: see ``bucket_of``)."""
    import fastremap
    import kimimaro

    from igneous.blockio import open_volume, read_block
    from igneous.storage import open_store

    cv = open_volume(layer_path, mip, fill_missing=fill_missing)
    start, stop = scale_bounds(cv.info, mip)
    lo, core_hi = vec(offset), vec(offset) + vec(shape)
    hi = np.minimum(core_hi + 1, stop)
    res = np.asarray(cv.info["scales"][mip]["resolution"], dtype=np.float32)
    labels = read_block(cv, lo, hi, mip)[..., 0]
    if mask_ids:
        labels = fastremap.mask(labels, [int(x) for x in mask_ids])
    if object_ids:
        labels = fastremap.mask_except(labels, [int(x) for x in object_ids])
    faces = shared_faces(lo, hi, start, stop)
    if dust_global and dust_threshold > 0:
        from igneous.tasks.label_prep import load_counts_index, remove_global_dust

        index = load_counts_index(layer_path, cv.info, mip)
        labels = remove_global_dust(labels, index, dust_threshold)
    else:
        labels = remove_local_dust(labels, dust_threshold, faces)

    skels = {}
    if labels.any():
        skels = kimimaro.skeletonize(
            labels, teasar_params=teasar_params, anisotropy=res, dust_threshold=0,
            progress=False, fix_branching=fix_branching, fix_borders=fix_borders,
            fix_avocados=fix_avocados, fill_holes=fill_holes, parallel=parallel,
        )
        if cross_sectional_area and skels:
            skels = kimimaro.cross_sectional_area(
                labels, skels, anisotropy=res,
                smoothing_window=cross_sectional_area_smoothing_window,
            )
    shift = ((lo + 0.5) * res).astype(np.float32)  # voxel centres, as in Neuroglancer
    attributes = vertex_attributes(cross_sectional_area)
    for label, skel in skels.items():
        skel.id = int(label)
        mark_seam_vertices(skel, res, faces)
        skel.vertices += shift
        skel.extra_attributes = attributes  # fixed order: the decoder relies on it

    cf = open_store(skel_dir)
    cf.put_json(BALL_FILE, invalidation_ball(teasar_params))  # the same from every block
    name = box_name(lo, core_hi)
    grouped: dict[int, dict] = {}
    for label, skel in skels.items():
        grouped.setdefault(bucket_of(label, buckets, bucket_digits), {})[label] = skel
    cf.put_many([(f"{bucket_dir(b)}{name}.frags", encode_skeletons(group))
                 for b, group in grouped.items()])
    if spatial_index:
        from igneous.formats.spatial_index import label_boxes, write_index

        boxes = label_boxes(labels, lo)
        write_index(skel_dir, lo, core_hi, cv.info["scales"][mip]["resolution"],
                    {k: v for k, v in boxes.items() if k in skels})
    # last: the marker says this block is complete
    done = np.fromiter(sorted(int(k) for k in skels), dtype=np.uint64)
    cf.put(f"{TASK_DIR}/{name}.labels", done.tobytes(), compress="gzip")


def write_meta(skel_url: str, meta: dict) -> None:
    from igneous.storage import open_store

    open_store(skel_url).put(FORGE_META, json.dumps(meta).encode("utf8"),
                             content_type="application/json")
