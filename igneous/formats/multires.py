"""Neuroglancer multi-resolution meshes (``neuroglancer_multilod_draco``).

Stored model coordinates are physical units (nm): the info's transform is the
identity, the octree grid is anchored at the layer's voxel offset and the
finest cell is ``min_chunk_size`` voxels. Level k cells are ``2**k`` finest
cells. Each fragment is Draco-encoded with integer positions in
``[0, 2**vqb - 1]`` relative to its cell (Draco's own quantization is set to
one unit per integer, so the integers survive exactly).

Level 0 is the forged mesh; level k > 0 is simplified from level k - 1 to a
quarter of its triangles (meshoptimizer's quadric decimation), then cut on the 2x2x2
sub-grid of its cells so no triangle crosses a finer cell (no cracks between
levels). Every fragment of level k < top has its parent cell listed at level
k + 1 (empty when that level has nothing there), as Neuroglancer's octree
traversal expects.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

# meshes with fewer triangles at level 0 get no coarser levels
MIN_LOD_TRIANGLES = 64
IDENTITY_TRANSFORM = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]


def mesh_from_precomputed(binary: bytes):
    """Decode a legacy precomputed mesh (uint32 count, float32 xyz, uint32 faces)."""
    import zmesh

    if len(binary) < 4:
        raise ValueError("truncated mesh")
    n = int(np.frombuffer(binary[:4], dtype="<u4")[0])
    end = 4 + 12 * n
    if len(binary) < end or (len(binary) - end) % 12:
        raise ValueError(f"corrupt mesh: {len(binary)} bytes cannot hold {n} vertices and whole triangles")
    verts = np.frombuffer(binary[4:end], dtype="<f4").reshape(-1, 3)
    faces = np.frombuffer(binary[end:], dtype="<u4").reshape(-1, 3)
    if faces.size and int(faces.max()) >= n:
        raise ValueError("corrupt mesh: a triangle refers to a missing vertex")
    return zmesh.Mesh(verts.astype(np.float32), faces.astype(np.uint32), None)


def mesh_to_precomputed(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    verts = np.ascontiguousarray(vertices, dtype="<f4")
    return (np.uint32(len(verts)).astype("<u4").tobytes() + verts.tobytes()
            + np.ascontiguousarray(faces, dtype="<u4").tobytes())


def unique_rows(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct float32 positions, index of each input row among them), exact.

    Sorts one 64-bit key per row (x, y bits and a multiple of z's) instead of
    ``np.unique(axis=0)``'s row-wise sort, which is ~10x slower; should two
    positions share a key, the check below notices and the slow way is used.
    """
    v = np.ascontiguousarray(vertices, dtype=np.float32) + np.float32(0)  # -0.0 -> 0.0
    bits = v.view(np.uint32).astype(np.uint64)
    key = ((bits[:, 0] << np.uint64(32)) | bits[:, 1]) ^ (bits[:, 2] * np.uint64(0x9E3779B97F4A7C15))
    order = np.argsort(key)
    sorted_key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    uniq = v[order[first]]
    if not np.array_equal(uniq[inverse].view(np.uint32), v.view(np.uint32)):
        uniq, inverse = np.unique(v, axis=0, return_inverse=True)
    return uniq, inverse.reshape(-1)


def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices at exactly the same position (task seams) and drop
    triangles that became degenerate."""
    if len(vertices) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32)
    uniq, inverse = unique_rows(vertices)
    faces = inverse[faces]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return uniq, faces[ok].astype(np.uint32)


def fuse(meshes: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """One welded mesh from many fragments (vertex, face arrays)."""
    if not meshes:
        return weld(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32))
    return weld(*_concat([(m.vertices, m.faces) for m in meshes]))


def morton_codes(positions: np.ndarray) -> np.ndarray:
    """Z-curve index of integer (x, y, z) cell positions, x least significant."""
    pos = np.asarray(positions, dtype=np.uint64).reshape(-1, 3)
    code = np.zeros(len(pos), dtype=np.uint64)
    top = int(pos.max()).bit_length() if len(pos) else 0  # higher bits are all zero
    for bit in range(min(top, 21)):
        for axis in range(3):
            code |= ((pos[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return code


@functools.cache
def _simplify_with_attributes():
    """meshoptimizer's ``meshopt_simplifyWithAttributes`` with its C signature:
    the Python package (0.2.30a0) declares none for it, so its own wrapper
    fails on the float argument."""
    import ctypes

    from meshoptimizer._loader import lib

    fn = ctypes.CDLL(lib._name).meshopt_simplifyWithAttributes  # own handle: theirs stays as is
    ptr, size = ctypes.c_void_p, ctypes.c_size_t
    fn.argtypes = [ptr, ptr, size, ptr, size, size, ptr, size, ptr, size, ptr, size,
                   ctypes.c_float, ctypes.c_uint, ptr]
    fn.restype = size
    return fn


def decimate(vertices: np.ndarray, faces: np.ndarray, target_count: int,
             max_error: float = float("inf"), lock_border: bool = False,
             lock: np.ndarray | None = None) -> np.ndarray:
    """Quadric edge-collapse decimation (meshoptimizer) towards ``target_count``
    triangles, stopping where the deviation would exceed ``max_error`` (physical
    units). Returns faces on a subset of the same vertices: none moves, and
    open-border vertices (``lock_border``) and the vertices indexed by ``lock``
    are kept."""
    import meshoptimizer

    index = np.ascontiguousarray(faces, dtype=np.uint32).reshape(-1)
    out = np.empty_like(index)
    positions = np.ascontiguousarray(vertices, dtype=np.float32)
    locked = None
    if lock is not None:
        locked = np.zeros(len(positions), dtype=np.uint8)
        locked[lock] = 1
    options = meshoptimizer.SIMPLIFY_ERROR_ABSOLUTE
    if lock_border:
        options |= meshoptimizer.SIMPLIFY_LOCK_BORDER
    n = _simplify_with_attributes()(
        out.ctypes.data, index.ctypes.data, len(index), positions.ctypes.data, len(positions), 12,
        None, 0, None, 0, None if locked is None else locked.ctypes.data,
        min(3 * int(target_count), len(index)), float(max_error), options, None)
    return out[:n].reshape(-1, 3)


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the vertices no triangle uses (and renumber the faces)."""
    used = np.flatnonzero(np.bincount(faces.reshape(-1), minlength=len(vertices)))
    remap = np.zeros(len(vertices), dtype=np.uint32)
    remap[used] = np.arange(len(used), dtype=np.uint32)
    return vertices[used], remap[faces]


def lod_levels(vertices: np.ndarray, faces: np.ndarray, nlod: int) -> list:
    """Level 0 plus ``nlod`` coarser meshes, each decimated to a quarter of the
    previous one's triangles; meshes under ``MIN_LOD_TRIANGLES`` triangles get
    level 0 only. A level that would come out empty repeats the previous one."""
    levels = [(vertices, faces)]
    if len(faces) < MIN_LOD_TRIANGLES:
        return levels
    for _ in range(nlod):
        v, f = levels[-1]
        coarse = decimate(v, f, max(len(f) // 4, 4))
        levels.append(compact(v, coarse) if len(coarse) else (v, f))
    return levels


def _cut(vertices: np.ndarray, faces: np.ndarray, cell: np.ndarray, origin: np.ndarray) -> dict:
    """Cut a mesh on the grid (origin, cell): {cell index: (vertices, faces)}."""
    import zmesh

    if len(faces) == 0:
        return {}
    # zmesh 1.15 sizes the grid in float32 (C++) and again in float64 (Python):
    # a vertex a hair above a cell plane makes them disagree and it reads past
    # its cell list (crash). An unused vertex in the middle of the next cell up
    # makes both agree; it adds no triangle.
    top = origin + (np.floor((vertices.max(axis=0) - origin) / cell) + 1.5) * cell
    vertices = np.concatenate([vertices, top[None]]).astype(np.float32)
    pieces = zmesh.chunk_mesh(zmesh.Mesh(vertices, faces, None), [float(c) for c in cell],
                              grid_origin=tuple(float(o) for o in origin))
    out = {}
    for key, piece in pieces.items():
        if len(piece.faces):
            out[tuple(int(k) for k in key)] = (piece.vertices, piece.faces)  # welded when encoded
    return out


def _encode_fragment(vertices: np.ndarray, faces: np.ndarray, lo: np.ndarray, size: np.ndarray,
                     vqb: int, compression_level: int) -> bytes:
    import DracoPy

    top = float(2**vqb - 1)
    q = np.clip(np.round((vertices - lo) / size * top), 0, top)
    q, faces = weld(q, faces)  # triangles smaller than a quantum vanish
    if len(faces) == 0:
        return b""
    return DracoPy.encode(q.astype(np.float32), faces.astype(np.uint32), quantization_bits=vqb,
                          compression_level=compression_level, quantization_range=top,
                          quantization_origin=np.zeros(3, np.float32), create_metadata=False)


def encode_multires(vertices: np.ndarray, faces: np.ndarray, *, nlod: int, chunk_shape: Sequence[float],
                    grid_origin: Sequence[float], vqb: int = 16, compression_level: int = 7,
                    max_error: float = 40.0) -> tuple[bytes, bytes]:
    """(fragment data, manifest) of one object's multi-resolution mesh."""
    chunk = np.asarray(chunk_shape, dtype=np.float64)
    origin = np.asarray(grid_origin, dtype=np.float64)
    levels = lod_levels(vertices, faces, nlod)
    num_lods = len(levels)
    cells: list[dict] = []
    for k, (v, f) in enumerate(levels):
        size = chunk * 2**k
        if k == 0:
            cells.append(_cut(v, f, size, origin))
            continue
        sub = _cut(v, f, size / 2, origin)  # 2x2x2 split inside each level-k cell
        grouped: dict[tuple, list] = {}
        for key, piece in sub.items():
            grouped.setdefault(tuple(x // 2 for x in key), []).append(piece)
        cells.append({key: _concat(parts) for key, parts in grouped.items()})
    # every fragment's parent must exist one level up (possibly empty)
    for k in range(num_lods - 1):
        for key in list(cells[k]):
            cells[k + 1].setdefault(tuple(x // 2 for x in key), None)
    data, positions, sizes = [], [], []
    for k in range(num_lods):
        keys = list(cells[k])
        pos = np.asarray(keys, dtype=np.int64).reshape(-1, 3)
        if np.any(pos < 0):
            raise ValueError("mesh lies below the octree grid origin")
        order = np.argsort(morton_codes(pos), kind="stable")
        lod_sizes = []
        size = chunk * 2**k
        for i in order:
            piece = cells[k][keys[i]]
            blob = b"" if piece is None else _encode_fragment(
                piece[0], piece[1], origin + pos[i] * size, size, vqb, compression_level)
            data.append(blob)
            lod_sizes.append(len(blob))
        positions.append(pos[order])
        sizes.append(lod_sizes)
    manifest = _manifest(chunk, origin, num_lods, positions, sizes, max_error)
    return b"".join(data), manifest


def _concat(parts: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """One (vertices, faces) from many, vertices not merged."""
    verts, faces, base = [], [], 0
    for v, f in parts:
        verts.append(np.asarray(v, dtype=np.float32))
        faces.append(np.asarray(f, dtype=np.int64) + base)
        base += len(v)
    return np.concatenate(verts), np.concatenate(faces)


def _manifest(chunk: np.ndarray, origin: np.ndarray, num_lods: int, positions: list, sizes: list,
              max_error: float) -> bytes:
    lod_scales = np.array([max(max_error, 1.0) * 2**k for k in range(num_lods)], dtype="<f4")
    parts = [
        chunk.astype("<f4").tobytes(),
        origin.astype("<f4").tobytes(),
        np.uint32(num_lods).astype("<u4").tobytes(),
        lod_scales.tobytes(),
        np.zeros((num_lods, 3), dtype="<f4").tobytes(),
        np.array([len(s) for s in sizes], dtype="<u4").tobytes(),
    ]
    for pos, sz in zip(positions, sizes):
        parts.append(np.ascontiguousarray(pos.T, dtype="<u4").tobytes())  # [3, n] C order
        parts.append(np.asarray(sz, dtype="<u4").tobytes())
    return b"".join(parts)


def multires_info(vqb: int, *, mip: int, sharding: dict | None = None,
                  spatial_index: dict | None = None) -> dict:
    """The mesh directory info of a multi-resolution mesh."""
    info = {
        "@type": "neuroglancer_multilod_draco",
        "vertex_quantization_bits": int(vqb),
        "transform": list(IDENTITY_TRANSFORM),
        "lod_scale_multiplier": 1.0,
        "mip": int(mip),
    }
    if sharding:
        info["sharding"] = sharding
    if spatial_index:
        info["spatial_index"] = spatial_index
    return info
