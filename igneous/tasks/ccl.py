"""Whole-volume 6-connected components labeling (CCL), block by block.

The volume is cut into a grid of blocks (``shape``). Four steps, in order:

1. ``ccl_faces``: label one block with cc3d (6-connected); store the labels
   and the (binarized) values on its six faces, and, for dust, the voxel
   count of each block component.
2. ``ccl_links``: from the stored faces alone (no volume read), the pairs
   (component of the lower neighbour, own component) whose voxels face each
   other across a low face with equal non-background values: the
   equivalence edges, one compact numpy file per block.
3. ``create_relabeling``: one process streams the edge files and runs a union
   find over the edge endpoints only (components touching a block boundary),
   never over every component nor the volume. It sums each merged object's
   voxel count (for ``dust``), then streams the blocks in order giving every
   surviving object the next consecutive id, and writes one lookup table per
   block (block component -> final id).
4. ``ccl_relabel``: label the block again (cc3d is deterministic), apply its
   lookup table, write the output layer.

Scratch files live under ``KEY/ccl/`` of the source layer with the parameters
of the run (``params.json``); every step checks them so a step run with other
parameters, or before the step it needs, is refused instead of producing
nonsense. Global ids of block components are ``offset[block] + local`` with
offsets from the blocks' component counts in grid order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from igneous.errors import UserError
from igneous.grid import Coords, Vec, as_list, cell_index, clip, grid_cells, vec
from igneous.tasks.voxels import encode_arrays, get_arrays, iter_arrays, put_arrays

STEPS = ("faces", "links", "calc-labels")
COMMAND = "igneous image ccl"


# -- the block grid and scratch layout ----------------------------------------

class Blocks:
    """The task grid: blocks of ``shape`` from ``start``, clipped at ``stop``."""

    def __init__(self, start: Sequence[int], stop: Sequence[int], shape: Sequence[int]):
        self.start, self.stop, self.shape = vec(start), vec(stop), vec(shape)
        self.counts = grid_cells(self.start, self.stop, self.start, self.shape)[1]
        # linear index = i + nx * (j + ny * k): x fastest, as igneous.grid.grid yields
        self.strides = np.array([1, self.counts[0], self.counts[0] * self.counts[1]], np.int64)

    def __len__(self) -> int:
        return int(np.prod(self.counts))

    def __iter__(self) -> Iterator[Vec]:
        for t in range(len(self)):
            yield cell_index(t, self.counts)

    def box(self, ijk: Sequence[int]) -> tuple[Vec, Vec]:
        lo = self.start + vec(ijk) * self.shape
        return clip(lo, lo + self.shape, self.start, self.stop)

    @staticmethod
    def name(ijk: Coords) -> str:
        return "-".join(str(int(x)) for x in ijk)


def scratch_dir(info: dict, mip: int) -> str:
    return f"{info['scales'][mip]['key']}/ccl"


def _key(info: dict, mip: int, kind: str, ijk: Coords) -> str:
    return f"{scratch_dir(info, mip)}/{kind}/{Blocks.name(ijk)}.npz"


def _present(arrays: dict | None, key: str, step: str, missing: str) -> dict[str, np.ndarray]:
    """``arrays`` fetched from ``key``, refusing when the step that makes them has not run."""
    if arrays is None:
        raise UserError(f"{missing} ({key}) is missing: run `{COMMAND} {step}` and execute "
                        "its tasks first")
    return arrays


def _need(cloudpath: str, key: str, step: str, missing: str) -> dict[str, np.ndarray]:
    return _present(get_arrays(cloudpath, key), key, step, missing)


def load_params(cloudpath: str, info: dict, mip: int) -> dict | None:
    """The parameters stored by the first step, or None."""
    from igneous.storage import open_store

    return open_store(cloudpath).get_json(f"{scratch_dir(info, mip)}/params.json")


def save_params(cloudpath: str, info: dict, mip: int, params: dict) -> None:
    from igneous.storage import open_store

    open_store(cloudpath).put_json(f"{scratch_dir(info, mip)}/params.json", params)


def check_params(stored: dict | None, given: dict[str, Any], *, step: str, needs: str | None) -> dict:
    """The stored parameters, after refusing a step that differs from them or
    comes before the step it ``needs``. ``given`` values of None mean "as stored"."""
    if stored is None:
        raise UserError(f"no CCL run found for this layer and mip: run `{COMMAND} faces` first")
    for name, value in given.items():
        if value is None:
            continue
        value = as_list(value) if name == "shape" else value
        if value != stored.get(name):
            raise UserError(
                f"{step}: {name} = {value} differs from {stored.get(name)} used by the earlier "
                f"steps; run every step with the same values (or `{COMMAND} clean` and start over)")
    if needs is not None and needs not in stored.get("steps", []):
        raise UserError(f"{step} must come after {needs}: run `{COMMAND} {needs}` first")
    return stored


# -- labeling one block ---------------------------------------------------------

def binarize(img: np.ndarray, threshold_gte: float | None,
             threshold_lte: float | None) -> np.ndarray:
    """``img`` itself, or the mask gte <= img <= lte when a threshold is given."""
    if threshold_gte is None and threshold_lte is None:
        return img
    mask = np.ones(img.shape, dtype=bool, order="F")
    if threshold_gte is not None:
        mask &= img >= threshold_gte
    if threshold_lte is not None:
        mask &= img <= threshold_lte
    return mask


def components(img: np.ndarray) -> tuple[np.ndarray, int]:
    """6-connected components of one block: (labels 1..N, N), in the smallest
    unsigned type cc3d finds safe (uint16 for most blocks: half the memory)."""
    import cc3d

    # numbering follows memory order: always label a Fortran-ordered block
    cc, n = cc3d.connected_components(np.asfortranarray(img), connectivity=6, return_N=True)
    return cc, int(n)


def _plane(a: np.ndarray, axis: int, i: int) -> np.ndarray:
    index: list[slice | int] = [slice(None)] * a.ndim
    index[axis] = i  # basic indexing: a view (np.take copies the whole array first)
    return np.ascontiguousarray(a[tuple(index)])


def _read(cloudpath: str, mip: int, lo: Vec, hi: Vec, fill_missing: bool,
          thresholds: tuple[float | None, float | None]) -> tuple[dict, np.ndarray]:
    from igneous.blockio import read_block
    from igneous.chunkio import open_volume

    cv = open_volume(cloudpath, mip, fill_missing=fill_missing)
    return cv.info, binarize(read_block(cv, lo, hi, mip)[..., 0], *thresholds)


def ccl_faces(cloudpath: str, mip: int, start: Sequence[int], stop: Sequence[int],
              shape: Sequence[int], index: Sequence[int], threshold_gte: float | None = None,
              threshold_lte: float | None = None, fill_missing: bool = False, dust_threshold: int = 0) -> None:
    """Step 1 for one block: labels and values on its faces, and component
    sizes when there is dust to remove."""
    lo, hi = Blocks(start, stop, shape).box(index)
    info, img = _read(cloudpath, mip, lo, hi, fill_missing, (threshold_gte, threshold_lte))
    cc, n = components(img)
    low: dict[str, np.ndarray] = {"n": np.array([n], np.uint64)}
    high: dict[str, np.ndarray] = {}
    for a in range(3):
        low[f"l{a}"], low[f"lv{a}"] = _plane(cc, a, 0), _plane(img, a, 0)
        high[f"h{a}"], high[f"hv{a}"] = _plane(cc, a, -1), _plane(img, a, -1)
    del img
    put_arrays(cloudpath, _key(info, mip, "faces-low", index), **low)
    put_arrays(cloudpath, _key(info, mip, "faces-high", index), **high)
    if dust_threshold > 0:  # sizes only matter to dust
        import fastremap

        sizes = np.zeros(n + 1, np.uint32 if cc.size < 2**32 else np.uint64)
        labels, counts = fastremap.unique(cc, return_counts=True)
        sizes[labels] = counts
        put_arrays(cloudpath, _key(info, mip, "sizes", index), sizes=sizes)


def unique_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distinct rows of (a, b) as a (k, 2) array."""
    import fastremap

    if a.size == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    if max(int(a.max()), int(b.max())) < 2**32:
        packed = fastremap.unique((a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64))
        return np.stack([packed >> np.uint64(32), packed & np.uint64(2**32 - 1)], axis=1)
    return np.unique(np.stack([a, b], axis=1).astype(np.uint64), axis=0)


def ccl_links(cloudpath: str, mip: int, start: Sequence[int], stop: Sequence[int],
              shape: Sequence[int], index: Sequence[int]) -> None:
    """Step 2 for one block: equivalences with its three lower neighbours."""
    from igneous.layers import LayerInfo

    info = LayerInfo(cloudpath).info
    low = _need(cloudpath, _key(info, mip, "faces-low", index), "faces", "faces of a block")
    out = {"n": low["n"]}
    for a in range(3):
        if index[a] == 0:  # no block below on this axis
            continue
        nb = vec(index) - np.eye(3, dtype=np.int64)[a]
        high = _need(cloudpath, _key(info, mip, "faces-high", nb), "faces", "faces of a block")
        value = low[f"lv{a}"]
        touch = (value == high[f"hv{a}"]) & (value != 0)
        out[f"e{a}"] = unique_pairs(high[f"h{a}"][touch], low[f"l{a}"][touch])
    put_arrays(cloudpath, _key(info, mip, "links", index), **out)


# -- step 3: the global union find and relabeling -------------------------------

def _merge_sets(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes sorted, set of each node: 0, 1, ... in order of each set's
    smallest node) for the graph of global-id ``edges`` (k, 2).

    Union-find in whole-array steps (no scipy: its import alone would add
    ~30 MB to the worker): hook each edge's larger root under its smaller,
    then halve every path by pointer jumping, until both ends of every edge
    share a root. Parents only ever decrease, so no cycle can form.
    """
    nodes, inv = np.unique(edges, return_inverse=True)
    inv = inv.reshape(edges.shape)
    a, b = inv[:, 0], inv[:, 1]
    parent = np.arange(nodes.size)
    while True:
        ra, rb = parent[a], parent[b]
        split = ra != rb
        if not split.any():
            break
        ra, rb = ra[split], rb[split]
        low = np.minimum(ra, rb)
        np.minimum.at(parent, np.maximum(ra, rb), low)
        while True:  # compress: every node points straight at its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
    _, sets = np.unique(parent, return_inverse=True)
    return nodes, sets.reshape(-1)


def create_relabeling(cloudpath: str, mip: int = 0, shape: Sequence[int] | None = None,
                      progress: bool = False) -> int:
    """Step 3: the global relabeling of every block; returns the number of objects.

    Memory: the edges and their endpoints, one block's tables, and a few
    numbers per block: never the volume nor every component.
    """
    from tqdm import tqdm

    from igneous.layers import load_layer, normalize_path
    from igneous.storage import open_store

    cloudpath = normalize_path(cloudpath)
    info = load_layer(cloudpath, mip).info
    params = check_params(load_params(cloudpath, info, mip), {"shape": shape},
                          step="calc-labels", needs="links")
    start, stop = params["bounds"]
    blocks = Blocks(start, stop, params["shape"])
    dust = int(params["dust_threshold"] or 0)

    def stream(kind: str, step: str, what: str) -> Iterator[dict]:
        keys = (_key(info, mip, kind, ijk) for ijk in blocks)
        fetched = iter_arrays(cloudpath, keys)
        for key, arrays in tqdm(fetched, total=len(blocks), desc=kind, disable=not progress):
            yield _present(arrays, key, step, what)

    counts = np.zeros(len(blocks), np.uint64)
    edges = []
    for t, links in enumerate(stream("links", "links", "links of a block")):
        counts[t] = links["n"][0]
        edges += [(t, a, links[f"e{a}"]) for a in range(3) if f"e{a}" in links]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.uint64)
    glob = [np.stack([offsets[t - blocks.strides[a]] + e[:, 0], offsets[t] + e[:, 1]], axis=1)
            for t, a, e in edges]
    del edges
    edges_all = np.concatenate(glob) if glob else np.zeros((0, 2), np.uint64)
    del glob
    nodes, sets = _merge_sets(edges_all)
    del edges_all
    nsets = int(sets.max()) + 1 if sets.size else 0
    # nodes are sorted, so each set's first node is its smallest global id: its root
    is_root = np.zeros(nodes.size, bool)
    is_root[np.unique(sets, return_index=True)[1]] = True

    def block_nodes(t: int) -> slice:
        lo = np.searchsorted(nodes, offsets[t] + np.uint64(1))
        return slice(int(lo), int(np.searchsorted(nodes, offsets[t] + counts[t], side="right")))

    def sizes() -> Iterator[np.ndarray | None]:
        if dust <= 0:
            return itertools.repeat(None)
        return (a["sizes"] for a in stream("sizes", "faces", "sizes of a block"))

    set_size = np.zeros(nsets, np.uint64)
    if dust > 0 and nsets:
        for t, size in enumerate(sizes()):
            s = block_nodes(t)
            assert size is not None  # (dust > 0)
            np.add.at(set_size, sets[s], size[nodes[s] - offsets[t]].astype(np.uint64))

    total = int(counts.sum())
    dtype = np.uint32 if total < 2**32 else np.uint64
    set_id = np.zeros(nsets, dtype)
    next_id = 0
    files = open_store(cloudpath)
    pending: list[tuple[str, bytes]] = []
    for t, (ijk, size) in enumerate(zip(blocks, sizes())):
        n = int(counts[t])
        s = block_nodes(t)
        local, their_set, root = (nodes[s] - offsets[t]).astype(np.int64), sets[s], is_root[s]
        keep = size >= dust if size is not None else np.ones(n + 1, bool)
        keep[0] = False
        keep[local] = set_size[their_set] >= dust
        new = keep.copy()
        new[local[~root]] = False
        lut = np.zeros(n + 1, dtype)
        k = int(np.count_nonzero(new))
        lut[new] = np.arange(next_id + 1, next_id + k + 1, dtype=dtype)
        next_id += k
        set_id[their_set[root]] = lut[local[root]]
        lut[local[~root]] = set_id[their_set[~root]]
        pending.append((_key(info, mip, "relabel", ijk), encode_arrays(lut=lut)))
        if len(pending) >= 256 or t == len(blocks) - 1:  # written in concurrent batches
            files.put_many(pending, compress="gzip")
            pending = []
    files.put_json(f"{scratch_dir(info, mip)}/relabel/summary.json",
                {"objects": next_id, "components": total})
    if "calc-labels" not in params["steps"]:
        params["steps"].append("calc-labels")
        save_params(cloudpath, info, mip, params)
    return next_id


def relabel_summary(cloudpath: str, info: dict, mip: int) -> dict | None:
    from igneous.storage import open_store

    return open_store(cloudpath).get_json(f"{scratch_dir(info, mip)}/relabel/summary.json")


def ccl_calc_labels(cloudpath: str, mip: int) -> None:
    """Step 3 as a queued task (one per run), for ``ccl auto``."""
    create_relabeling(cloudpath, mip)


def ccl_relabel(src_path: str, dest_path: str, mip: int, start: Sequence[int],
                stop: Sequence[int], shape: Sequence[int], index: Sequence[int],
                threshold_gte: float | None = None, threshold_lte: float | None = None,
                fill_missing: bool = False, compress: str | None = "gzip") -> None:
    """Step 4 for one block: write its final labels into ``dest_path`` (scale 0)."""
    from igneous.blockio import write_region
    from igneous.chunkio import open_volume

    lo, hi = Blocks(start, stop, shape).box(index)
    info, img = _read(src_path, mip, lo, hi, fill_missing, (threshold_gte, threshold_lte))
    lut = _need(src_path, _key(info, mip, "relabel", index), "calc-labels",
                "relabeling of a block")["lut"]
    cc, n = components(img)
    del img
    if n + 1 != lut.size:
        raise UserError(f"block {Blocks.name(index)} of {src_path} has changed since "
                        f"`{COMMAND} faces` ran ({n} components, {lut.size - 1} before); start over")
    dest = open_volume(dest_path, 0, compress=compress)
    lut = lut.astype(dest.dtype, copy=False)
    # one row of chunks at a time, so the final labels never exist as a whole block
    step = int(dest.chunk_size(0)[2])
    for z in range(0, cc.shape[2], step):
        # indexing the C-ordered transpose gives a Fortran-ordered result with no extra copy
        out = lut[cc[:, :, z:z + step].T].T[..., np.newaxis]
        write_region(dest, out, lo + vec((0, 0, z)), 0)


def clean_intermediate_files(cloudpath: str, mip: int = 0) -> int:
    """Delete the scratch files of a CCL run, and temporary files killed
    writers left in the layer; returns how many were deleted."""
    from igneous.layers import load_layer, normalize_path
    from igneous.storage import open_store

    cloudpath = normalize_path(cloudpath)
    info = load_layer(cloudpath, mip).info
    store = open_store(cloudpath)
    keys = list(store.list(scratch_dir(info, mip) + "/"))
    store.delete(keys)
    return len(keys) + store.remove_leftovers()


def ccl_clean(cloudpath: str, mip: int) -> None:
    clean_intermediate_files(cloudpath, mip)
