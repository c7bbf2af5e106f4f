"""Label preparation before meshing and skeletonizing: ``--fill-holes`` (mesh
forge) and ``--dust-global`` (mesh and skeleton forge).

Hole filling works on one forge block, so it closes what is closed inside the
block (as any blockwise filler must). It only ever writes into background
voxels: a label enclosed by another keeps its voxels (and its mesh), the
background around it takes the enclosing label.

Global dust reads the whole-volume voxel counts that ``igneous image voxels
count`` + ``sum`` store as a MapBuffer IntMap (``KEY/stats/voxel_counts.im``)
and drops labels whose total count is under the threshold, so a large object
that only grazes a block is meshed there too. IntMap's own lookup overflows
on ids of 2**63 and above; the search here is numpy's, over its Eytzinger-
ordered index, for every id of a block at once.
"""

from __future__ import annotations

import numpy as np

from igneous.errors import UserError

FILL_LEVELS = {0: "no hole filling", 1: "fill holes", 2: "also holes cut by the block's faces",
               3: "also a morphological closing first"}


def fill_holes(labels: np.ndarray, level: int) -> np.ndarray:
    """``labels`` with background holes filled by their enclosing label (see FILL_LEVELS)."""
    if level <= 0 or not labels.any():
        return labels
    import fastmorph

    filled = fastmorph.fill_holes(labels, remove_enclosed=True, fix_borders=level >= 2,
                                  morphological_closing=level >= 3)
    if isinstance(filled, tuple):
        filled = filled[0]
    return np.asfortranarray(np.where(labels != 0, labels, filled))


def counts_key(info: dict, mip: int) -> str:
    return f"{info['scales'][mip]['key']}/stats/voxel_counts.im"


def load_counts_index(layer_path: str, info: dict, mip: int) -> np.ndarray:
    """The (N, 2) uint64 index (label, count) of the layer's voxel counts."""
    from igneous.storage import open_store

    key = counts_key(info, mip)
    data = open_store(layer_path).get(key)
    if data is None:
        raise UserError(f"{layer_path}/{key} does not exist: --dust-global needs the global voxel "
                        f"counts; run `igneous image voxels count {layer_path} --mip {mip}` and "
                        "`igneous image voxels sum` first")
    data = bytes(data)
    if data[:4] != b"intm" or (len(data) - 10) % 16:
        raise UserError(f"{layer_path}/{key} is not a voxel count IntMap; rebuild it with "
                        "`igneous image voxels sum`")
    n = int.from_bytes(data[6:10], "little")
    return np.frombuffer(data, dtype="<u8", count=2 * n, offset=10).reshape(n, 2)


def lookup(index: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Counts of ``keys`` in an Eytzinger-ordered (label, count) index (0 where absent):
    node k's children are 2k+1 (smaller) and 2k+2 (larger)."""
    keys = np.asarray(keys, dtype=np.uint64)
    out = np.zeros(keys.shape, dtype=np.uint64)
    n = len(index)
    node = np.zeros(keys.shape, dtype=np.int64)
    active = np.ones(keys.shape, dtype=bool) if n else np.zeros(keys.shape, dtype=bool)
    while active.any():
        at = node[active]
        label = index[at, 0]
        k = keys[active]
        hit = label == k
        where = np.flatnonzero(active)
        out[where[hit]] = index[at[hit], 1]
        nxt = 2 * at + 1 + (label < k)
        node[where] = nxt
        active[where] = ~hit & (nxt < n)
    return out


def remove_global_dust(labels: np.ndarray, index: np.ndarray, threshold: int) -> np.ndarray:
    """``labels`` without the labels whose whole-volume count is under ``threshold``."""
    import fastremap

    uniq = fastremap.unique(labels)
    uniq = uniq[uniq != 0]
    small = uniq[lookup(index, uniq) < np.uint64(threshold)]
    if not len(small):
        return labels
    return fastremap.mask(labels, small.tolist())
