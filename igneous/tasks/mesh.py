"""Forge: mesh every label of one task box of a segmentation.

A task reads its box plus one voxel on the high side of each axis, so the
marching-cubes cells of neighbouring tasks tile space exactly: fragments meet
on the shared voxel plane with identical vertices there. The simplifier
(meshoptimizer's edge collapse: no vertex moves, open-border vertices are
locked) keeps that true after simplification, so the merged mesh is
watertight across task seams.

Sides of the box on the dataset boundary are padded with background so
objects are closed there (``closed_dataset_edges``). Vertices are in physical
units where voxel ``i`` spans ``[i, i + 1) * resolution`` (Neuroglancer's
convention, so meshes lie on the segmentation they came from): marching
cubes samples voxel centres, ``(i + 0.5) * resolution``.

Outputs, into the mesh directory:

* unsharded: one precomputed mesh file per label, ``LABEL:0:X0-X1_Y0-Y1_Z0-Z1``
  (the task's voxel box), gzip-compressed;
* sharded: one ``.frags`` MapBuffer {label: precomputed mesh} per task, named
  like the task's spatial index file (physical box), for ``merge-sharded``;
* the task's spatial index file (labels present in the box read, with boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from igneous.grid import Coords, Floats, box_name, vec

if TYPE_CHECKING:
    from igneous.blockio import BlockVolume


def filter_labels(labels: np.ndarray, *, object_ids: Sequence[int] | None = None,
                  exclude_object_ids: Sequence[int] | None = None,
                  dust_threshold: int | None = None) -> np.ndarray:
    """Zero out labels not asked for, excluded, or with fewer voxels than the dust threshold."""
    import fastremap

    if object_ids:
        labels = fastremap.mask_except(labels, [int(x) for x in object_ids], in_place=True)
    if exclude_object_ids:
        labels = fastremap.mask(labels, [int(x) for x in exclude_object_ids], in_place=True)
    if dust_threshold:
        uniq, counts = fastremap.unique(labels, return_counts=True)
        small = [int(u) for u, c in zip(uniq, counts) if u != 0 and c < dust_threshold]
        if small:
            labels = fastremap.mask(labels, small, in_place=True)
    return labels


# meshoptimizer's error bound, as a fraction of max_simplification_error. It
# bounds the distance to the planes of the collapsed triangles, so the true
# deviation runs above it in a few places: at 0.3 the 40 nm default gives the
# reference's error (p99 ~13 nm) with ~10% fewer triangles (docs/meshing.md, "Speed").
SIMPLIFY_ERROR_FRACTION = 0.3
# connected pieces with fewer triangles are kept as they are (see split_small_components)
SMALL_COMPONENT = 128
# gzip level of unsharded fragments: at 6 these compress 1.5x faster than at
# CloudFiles' default 9 (libdeflate; 3.4x with zlib) and no larger
GZIP_LEVEL = 6


def simplify(vertices: np.ndarray, faces: np.ndarray, factor: int, max_error: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation towards ``len(faces) / factor`` triangles, stopping
    where the deviation would exceed ``max_error * SIMPLIFY_ERROR_FRACTION``.

    No vertex moves and open-border vertices (the task seams) are locked, so
    fragments of neighbouring tasks still meet exactly; each fragment keeps its
    extent (its extreme vertices and small pieces are kept).
    """
    from igneous.formats.multires import compact, decimate

    faces, kept = split_small_components(len(vertices), faces, SMALL_COMPONENT)
    target = max(len(faces) // max(factor, 1), 4)
    if len(faces) > target:
        # the extreme vertices on each axis stay: the quadric error does not see
        # a thin spike shortened along its own sides, and the extent must hold
        extremes = np.concatenate([vertices.argmin(axis=0), vertices.argmax(axis=0)])
        simple, faces = decimate(vertices, faces, target,
                                 float(max_error) * SIMPLIFY_ERROR_FRACTION,
                                 lock_border=True, lock=extremes)
        if simple is not vertices:  # the fallback simplifier made new vertices
            kept = kept + len(simple)
            vertices = np.concatenate([simple, vertices])
    return compact(vertices, np.concatenate([faces, kept]))  # small pieces ride along unchanged


def split_small_components(num_vertices: int, faces: np.ndarray, min_faces: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(faces of big connected pieces, faces of pieces under ``min_faces``).

    Decimation would shrink a small closed piece to nothing (it has no border
    to hold it), moving the object's extent by more than the error budget.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = faces.astype(np.int64 if num_vertices >= 2**31 else np.int32)
    graph = coo_matrix((np.ones(2 * len(f), dtype=bool),
                        (np.concatenate([f[:, 0], f[:, 1]]), np.concatenate([f[:, 1], f[:, 2]]))),
                       shape=(num_vertices, num_vertices))
    count, comp = connected_components(graph, directed=False)
    if count == 1:  # one piece: kept whole when small
        return (faces, faces[:0]) if len(faces) >= min_faces else (faces[:0], faces)
    face_comp = comp[faces[:, 0]]
    small = np.bincount(face_comp, minlength=count)[face_comp] < min_faces
    return faces[~small], faces[small]


def mesh_labels(labels: np.ndarray, origin: Coords, resolution: Floats, *,
                simplification_factor: int, max_simplification_error: float) -> dict[int, tuple]:
    """{label: (vertices, faces)} in physical units; ``origin`` = global voxel of labels[0,0,0]."""
    import zmesh

    res = np.asarray(resolution, dtype=np.float64)
    mesher = zmesh.Mesher(tuple(res))
    mesher.mesh(labels)
    shift = ((np.asarray(origin, dtype=np.float64) + 0.5) * res).astype(np.float32)  # voxel centres
    out = {}
    for label in mesher.ids():
        m = mesher.get(label, normals=False, reduction_factor=0)
        mesher.erase(label)
        v, f = m.vertices, m.faces
        if simplification_factor and len(f):
            v, f = simplify(v, f, simplification_factor, max_simplification_error)
        if len(f) == 0:
            continue
        out[int(label)] = (v + shift, f)
    mesher.clear()
    return out


def read_task_labels(vol: BlockVolume, mip: int, lo: np.ndarray, hi: np.ndarray,
                     closed_dataset_edges: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels padded with background on dataset sides, their global origin, read box high end)."""
    from igneous.blockio import read_block

    start, stop = vol.bounds(mip)
    read_hi = np.minimum(hi + 1, stop)
    labels = read_block(vol, lo, read_hi, mip)[..., 0]
    origin = lo.copy()
    if closed_dataset_edges:
        low = (lo <= start).astype(int)
        high = (read_hi >= stop).astype(int)
        if low.any() or high.any():
            labels = np.pad(labels, list(zip(low, high)), mode="constant")
            origin = lo - low
    return labels, origin, read_hi


def mesh_forge(layer_path: str, mip: int, lo: Coords, hi: Coords, mesh_dir: str,
              simplification_factor: int = 100, max_simplification_error: float = 40,
              dust_threshold: int | None = None, object_ids: list[int] | None = None,
              exclude_object_ids: list[int] | None = None, fill_missing: bool = False,
              spatial_index: bool = True, sharded: bool = False,
              closed_dataset_edges: bool = True, compress: str | None = "gzip",
              fill_holes: int = 0, dust_global: bool = False,
              cache_control: str | None = None) -> None:
    """Mesh the task box [lo, hi) (voxels at ``mip``) into ``layer_path/mesh_dir``.

    ``dust_global``: ``dust_threshold`` applies to whole-volume voxel counts;
    ``fill_holes`` 1-3: fill background holes first (igneous.tasks.label_prep);
    ``cache_control``: the fragments' Cache-Control header (none by default)."""
    from igneous.blockio import open_volume
    from igneous.formats.multires import mesh_to_precomputed
    from igneous.formats.spatial_index import index_filename, label_boxes, write_index
    from igneous.storage import open_store
    from igneous.tasks import label_prep

    vol = open_volume(layer_path, mip, fill_missing=fill_missing)
    lo, hi = vec(lo), vec(hi)
    labels, origin, read_hi = read_task_labels(vol, mip, lo, hi, closed_dataset_edges)
    if dust_global and dust_threshold:
        index = label_prep.load_counts_index(layer_path, vol.info, mip)
        labels = label_prep.remove_global_dust(labels, index, dust_threshold)
        dust_threshold = None
    labels = filter_labels(labels, object_ids=object_ids, exclude_object_ids=exclude_object_ids,
                           dust_threshold=dust_threshold)
    labels = label_prep.fill_holes(labels, fill_holes)
    res = vol.resolution(mip)
    meshes = mesh_labels(labels, origin, res,
                         simplification_factor=simplification_factor if simplification_factor else 0,
                         max_simplification_error=max_simplification_error)
    dir_path = f"{vol.cloudpath}/{mesh_dir}"
    cf = open_store(dir_path)
    name = box_name(lo, hi)
    compress = None if compress in (None, "none", False) else compress
    if sharded:
        from mapbuffer import MapBuffer

        blobs = {label: mesh_to_precomputed(v, f) for label, (v, f) in meshes.items()}
        # named like the task's index file, which lists the labels inside
        stem = index_filename(lo, hi, res)[: -len(".spatial")]
        cf.put(f"{stem}.frags", MapBuffer(blobs).tobytes(), cache_control=cache_control)
    else:
        cf.put_many(((f"{label}:0:{name}", mesh_to_precomputed(v, f))
                     for label, (v, f) in meshes.items()),
                    compress=compress, level=GZIP_LEVEL if compress == "gzip" else None,
                    content_type="application/octet-stream", cache_control=cache_control)
    if spatial_index:
        inner = labels[tuple(slice(int(a), int(a) + int(b - c))
                             for a, b, c in zip(lo - origin, read_hi, lo))]
        boxes = label_boxes(inner, lo)
        write_index(dir_path, lo, hi, res, {k: v for k, v in boxes.items() if k in meshes})
