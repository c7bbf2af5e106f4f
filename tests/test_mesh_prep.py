"""--fill-holes and --dust-global label preparation, against independent
computations (mapbuffer's own IntMap, fill_voids, numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from igneous.tasks.mesh_prep import fill_holes, lookup, remove_global_dust


def intmap_index(d: dict) -> np.ndarray:
    import mapbuffer

    data = mapbuffer.IntMap(d).tobytes()
    n = len(d)
    assert len(data) == 10 + 16 * n
    return np.frombuffer(data, dtype="<u8", count=2 * n, offset=10).reshape(n, 2)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 1000])
def test_lookup_matches_dict(n):
    rs = np.random.RandomState(n)
    keys = np.unique(np.concatenate([rs.randint(1, 2**62, n, dtype=np.int64).astype(np.uint64),
                                     np.array([2**63 + 5, 2**64 - 2], np.uint64)[: min(n, 2)]]))
    d = {int(k): int(rs.randint(1, 10**6)) for k in keys}
    index = intmap_index(d)
    absent = np.array([0, 3, 2**63 + 6, 2**64 - 1], np.uint64)
    queries = np.concatenate([keys, absent])
    want = np.array([d.get(int(q), 0) for q in queries], np.uint64)
    np.testing.assert_array_equal(lookup(index, queries), want)


def test_remove_global_dust():
    big = np.uint64(2**63 + 11)
    labels = np.zeros((20, 20, 10), np.uint64)
    labels[:5] = 1
    labels[5:10] = big
    labels[10:12] = 7
    index = intmap_index({1: 5000, int(big): 90, 7: 10_000})
    out = remove_global_dust(labels, index, 100)
    # ``big`` has 2000 voxels here but only 90 in the whole volume: gone
    want = np.where(labels == big, 0, labels)
    np.testing.assert_array_equal(out, want)


def test_fill_holes_keeps_enclosed_labels():
    import fill_voids

    a = np.zeros((30, 30, 30), np.uint32)
    a[2:14, 2:14, 2:14] = 5
    a[6:9, 6:9, 6:9] = 0          # a background void inside 5
    a[16:28, 16:28, 16:28] = 7
    a[20:24, 20:24, 20:24] = 0
    a[21:23, 21:23, 21:23] = 9    # 9 sits in a void of 7, with background around it
    out = fill_holes(a, 1)
    want = a.copy()
    for label in (5, 7):
        filled = fill_voids.fill(a == label)
        want[filled & (a == 0)] = label
    np.testing.assert_array_equal(out, want)
    assert (out == 9).sum() == 8 and fill_holes(a, 0) is a
    empty = np.zeros((4, 4, 4), np.uint32)
    assert not fill_holes(empty, 3).any()
