"""Z-slice reordering equals numpy indexing; bad mappings are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.sample import connectomics
from igneous.worker import run_local
from tests.volumes import BIG, make_layer, read_mip

OFFSET = (3, 5, 7)
RES = (4, 6, 40)
RNG = np.random.default_rng(5)


def noisy(shape, dtype=np.uint8):
    return np.asfortranarray(RNG.integers(0, 255, shape).astype(dtype))


def order_from(mapping: dict, n: int, z0: int) -> list[int]:
    """Source index (0-based) of each destination slice, by numpy logic."""
    order = np.arange(n)
    for src, dest in mapping.items():
        order[dest - z0] = src - z0
    return order.tolist()


def test_spec_example(tmp_path):
    data = noisy((37, 29, 5))
    url = make_layer(str(tmp_path / "src"), data, offset=(3, 5, 0), resolution=RES, chunk=(16, 16, 2))
    run_local([tc.create_reordering_tasks(url, str(tmp_path / "dest"), {"1": 2, "2": 3, "3": 1})],
              progress=False)
    got, off = read_mip(f"file://{tmp_path / 'dest'}", 0)
    assert tuple(off) == (3, 5, 0)
    assert np.array_equal(got, data[:, :, [0, 3, 1, 2, 4]])


@pytest.mark.parametrize("kind,depth", [("random", 4), ("runs", 4), ("runs", 16)])
def test_permutations_of_big_labels(tmp_path, kind, depth):
    n = 13
    data = np.asfortranarray(RNG.integers(0, 4, (21, 19, n)).astype(np.uint64) + np.uint64(BIG))
    url = make_layer(str(tmp_path / "src"), data, offset=OFFSET, resolution=RES, chunk=(8, 8, 4))
    if kind == "random":
        perm = RNG.permutation(n)
    else:  # runs of consecutive sources next to gaps of one and two slices
        perm = np.array([0, 2, 3, 1, 5, 6, 4, 8, 7, 9, 12, 10, 11])
    # destination slice i takes source perm[i]: source perm[i] moves to i
    mapping = {int(OFFSET[2] + p): int(OFFSET[2] + i) for i, p in enumerate(perm) if i != p}
    plan = tc.create_reordering_tasks(url, str(tmp_path / "dest"), mapping, shape=(16, 8, depth))
    assert len(plan) == 2 * 3 * -(-n // depth)
    run_local([plan], progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'dest'}", 0)
    assert np.array_equal(got, data[:, :, perm])
    assert np.array_equal(got, data[:, :, order_from(mapping, n, OFFSET[2])])


def test_real_segmentation_swap(tmp_path):
    seg = connectomics((96, 80, 24))
    if seg is None:
        pytest.skip("connectomics sample not present")
    url = make_layer(str(tmp_path / "src"), seg, offset=OFFSET, resolution=(16, 16, 40),
                     chunk=(32, 32, 8), encoding="compressed_segmentation")
    z = OFFSET[2]
    mapping = {z + 2: z + 20, z + 20: z + 2, z + 9: z + 10, z + 10: z + 11, z + 11: z + 9}
    run_local([tc.create_reordering_tasks(url, str(tmp_path / "dest"), mapping)], progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'dest'}", 0)
    assert np.array_equal(got, seg[:, :, order_from(mapping, 24, z)])


@pytest.mark.parametrize("mapping,words", [
    ({"1": 2}, ["1, 2", "z=2", "z=1"]),  # 2 is overwritten and 1 left empty
    ({"0": 3, "1": 3, "3": 0}, ["0, 1", "z=3"]),
    ({"4": 9}, ["z=9", "outside"]),
    ({"a": 1}, ["integer"]),
    ({"1": 2.0}, ["integer"]),
])
def test_bad_mappings_name_the_slices(tmp_path, mapping, words):
    url = make_layer(str(tmp_path / "src"), noisy((8, 8, 5)), chunk=(8, 8, 5))
    with pytest.raises(UserError) as e:
        tc.create_reordering_tasks(url, str(tmp_path / "dest"), mapping)
    for w in words:
        assert w in str(e.value)
    assert not (tmp_path / "dest").exists()


def test_cli_through_queue(tmp_path, igneous):
    data = noisy((30, 22, 9))
    url = make_layer(str(tmp_path / "src"), data, offset=OFFSET, resolution=RES, chunk=(16, 16, 4))
    mapping = {str(OFFSET[2] + 8): OFFSET[2], str(OFFSET[2]): OFFSET[2] + 8}
    mfile = tmp_path / "mapping.json"
    mfile.write_text(json.dumps(mapping))
    queue = str(tmp_path / "queue")
    igneous("image", "reorder", url, f"file://{tmp_path / 'dest'}", "--mapping-file", mfile,
            "--queue", queue, check=True)
    igneous("execute", "-x", "-q", queue, check=True)
    got, _ = read_mip(f"file://{tmp_path / 'dest'}", 0)
    expected = data[:, :, [8, 1, 2, 3, 4, 5, 6, 7, 0]]
    assert np.array_equal(got, expected)


def test_cli_errors(tmp_path, igneous):
    url = make_layer(str(tmp_path / "src"), noisy((8, 8, 5)), chunk=(8, 8, 5))
    bad = tmp_path / "bad.json"
    bad.write_text('{"1": 2}')
    r = igneous("image", "reorder", url, f"file://{tmp_path / 'dest'}", "--mapping-file", bad)
    assert r.returncode != 0 and "duplicated" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad.write_text("{not json")
    r = igneous("image", "reorder", url, f"file://{tmp_path / 'dest'}", "--mapping-file", bad)
    assert r.returncode != 0 and "JSON" in r.stderr and "Traceback" not in r.stderr
    r = igneous("image", "reorder", url, f"file://{tmp_path / 'dest'}", "--mapping-file",
                tmp_path / "missing.json")
    assert r.returncode != 0 and "does not exist" in r.stderr
    assert not (tmp_path / "dest").exists()
