"""Per-label voxel counts: one task counts a block; ``accumulate_voxel_counts``
sums every block's counts into one MapBuffer IntMap at
``KEY/stats/voxel_counts.im``.

Per-block counts are stored as compact numpy files (uint64 labels and counts,
so labels above 2**53 stay exact), never JSON.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from igneous.errors import UserError
from igneous.grid import box_name, vec
from igneous.storage import open_store

STATS_DIR = "stats"
COUNTS_DIR = f"{STATS_DIR}/voxel_counts"
MANIFEST = f"{COUNTS_DIR}/manifest.json"
RESULT = f"{STATS_DIR}/voxel_counts.im"
# merge this many blocks' counts at once while summing (bounds memory)
MERGE_BATCH = 64


def put_arrays(cloudpath: str, key: str, compress: str | None = "gzip", /,
               **arrays: np.ndarray) -> None:
    """Write named arrays as one whole .npz object."""
    open_store(cloudpath).put(key, encode_arrays(**arrays), compress=compress)


def encode_arrays(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    return buf.getvalue()


def get_arrays(cloudpath: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of one .npz object, or None when it does not exist."""
    return _decode(open_store(cloudpath).get(key))


def _decode(data: bytes | None) -> dict[str, np.ndarray] | None:
    if data is None:
        return None
    with np.load(io.BytesIO(data)) as f:
        return {k: f[k] for k in f.files}


def iter_arrays(cloudpath: str, keys: Iterable[str]) -> Iterator[tuple[str, dict | None]]:
    """(key, arrays or None) for each key, in order; remote keys are fetched
    concurrently a batch at a time, so thousands of small files stream quickly."""
    for key, data in open_store(cloudpath).get_many(keys):
        yield key, _decode(data)


def merge_counts(labels: Sequence[np.ndarray], counts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sum counts of equal labels across several (labels, counts) pairs; sorted by label."""
    lab = np.concatenate([np.asarray(x, dtype=np.uint64) for x in labels])
    cnt = np.concatenate([np.asarray(x, dtype=np.uint64) for x in counts])
    if lab.size == 0:
        return lab, cnt
    order = np.argsort(lab, kind="stable")
    lab, cnt = lab[order], cnt[order]
    starts = np.flatnonzero(np.concatenate(([True], lab[1:] != lab[:-1])))
    return lab[starts], np.add.reduceat(cnt, starts)


def intmap_bytes(labels: np.ndarray, values: np.ndarray) -> bytes:
    """A MapBuffer IntMap (uint64 -> uint64) built straight from sorted arrays.

    Same bytes as ``IntMap(dict)`` without building a Python dict of
    millions of entries: header (magic, version 0, dtype code 3 = uint64,
    key count), then (key, value) pairs in Eytzinger order.
    """
    from mapbuffer.intmap import IntMap, mapbufferaccel

    n = int(labels.size)
    if n >= 2**32:
        raise UserError(f"{n} labels do not fit in one IntMap (at most 2**32 - 1)")
    header = IntMap.MAGIC_NUMBER + bytes([IntMap.FORMAT_VERSION, 3]) + n.to_bytes(4, "little")
    if n == 0:
        return header
    pairs = np.empty((n, 2), dtype=np.uint64)
    pairs[:, 0], pairs[:, 1] = labels, values
    pairs = pairs[mapbufferaccel.eytzinger_sort_indices(n)]
    return header + pairs.astype("<u8").tobytes("C")


def count_voxels(cloudpath: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                 fill_missing: bool = False, agglomerate: bool = False,
                 timestamp: int | None = None) -> None:
    """Count the voxels of each label in ``[offset, offset + shape)`` (clipped to the volume)."""
    import fastremap

    from igneous.blockio import read_block
    from igneous.chunkio import open_volume
    from igneous.grid import clip, scale_bounds

    cv = open_volume(cloudpath, mip, fill_missing=fill_missing, agglomerate=agglomerate,
                     timestamp=timestamp)
    start, stop = scale_bounds(cv.info, mip)
    lo, hi = clip(vec(offset), vec(offset) + vec(shape), start, stop)
    img = read_block(cv, lo, hi, mip)
    labels, counts = fastremap.unique(img, return_counts=True)
    key = cv.info["scales"][mip]["key"]
    put_arrays(cloudpath, f"{key}/{COUNTS_DIR}/{box_name(lo, hi)}.npz",
               labels=labels.astype(np.uint64), counts=counts.astype(np.uint64))


def sum_blocks(cloudpath: str, keys: Iterable[str], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Stream the per-block count files and sum them (merged in batches)."""
    from tqdm import tqdm

    lab, cnt = np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    batch_l: list[np.ndarray] = []
    batch_c: list[np.ndarray] = []
    missing = 0
    keys = list(keys)
    for _, arrays in tqdm(iter_arrays(cloudpath, keys), total=len(keys), desc="Summing",
                          disable=not progress):
        if arrays is None:
            missing += 1
            continue
        batch_l.append(arrays["labels"])
        batch_c.append(arrays["counts"])
        if len(batch_l) >= MERGE_BATCH:
            lab, cnt = merge_counts([lab, *batch_l], [cnt, *batch_c])
            batch_l, batch_c = [], []
    if missing:
        raise UserError(f"{missing} of {len(keys)} blocks of {cloudpath} have not been counted yet; "
                        "run `igneous execute` on the counting queue first")
    return merge_counts([lab, *batch_l], [cnt, *batch_c])
