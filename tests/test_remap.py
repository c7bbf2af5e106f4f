"""Label remapping checked against a numpy lookup on the whole array."""

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
RNG = np.random.default_rng(9)


def expected(labels: np.ndarray, mapping: dict[int, int], keep: bool) -> np.ndarray:
    """Lookup through np.unique's inverse: every distinct label mapped once."""
    uniq, inverse = np.unique(labels, return_inverse=True)
    new = np.array([mapping.get(int(u), int(u) if keep else 0) for u in uniq], dtype=np.uint64)
    return new[inverse].reshape(labels.shape)


def big_labels(shape) -> np.ndarray:
    lab = RNG.integers(0, 9, shape).astype(np.uint64)
    lab[lab > 0] += np.uint64(BIG)
    return np.asfortranarray(lab)


@pytest.mark.parametrize("keep", [True, False])
def test_json_mapping_above_2_53(tmp_path, keep):
    data = big_labels((37, 29, 11))
    url = make_layer(str(tmp_path / "seg"), data, offset=OFFSET, resolution=RES, chunk=(16, 16, 4))
    mapping = {BIG + 1: BIG + 2, BIG + 3: BIG + 2, BIG + 5: 2**64 - 1, BIG + 6: BIG + 7}
    mfile = tmp_path / "map.json"
    mfile.write_text(json.dumps({str(k): v for k, v in mapping.items()}))  # ints, never floats
    plan = tc.create_remap_tasks(url, str(tmp_path / "out"), str(mfile),
                                 preserve_missing_labels=keep)
    run_local([plan], progress=False)
    got, off = read_mip(f"file://{tmp_path / 'out'}", 0)
    assert tuple(off) == OFFSET
    assert np.array_equal(got, expected(data, mapping, keep))
    assert got.max() == 2**64 - 1


def test_npy_pairs_widen_uint32(tmp_path):
    data = np.asfortranarray(RNG.integers(0, 50, (21, 17, 6)).astype(np.uint32))
    url = make_layer(str(tmp_path / "seg"), data, offset=OFFSET, resolution=RES, chunk=(8, 8, 4))
    pairs = np.array([[1, 2**40], [2, 7], [3, 7], [49, 0]], dtype=np.uint64)
    np.save(tmp_path / "pairs.npy", pairs)
    run_local([tc.create_remap_tasks(url, str(tmp_path / "out"), str(tmp_path / "pairs.npy"))],
              progress=False)
    info = json.loads((tmp_path / "out" / "info").read_text())
    assert info["data_type"] == "uint64"  # 2**40 does not fit uint32
    got, _ = read_mip(f"file://{tmp_path / 'out'}", 0)
    assert np.array_equal(got, expected(data, {int(a): int(b) for a, b in pairs}, True))


def test_real_segmentation_agglomeration(tmp_path):
    seg = connectomics((128, 112, 40))
    if seg is None:
        pytest.skip("connectomics sample not present")
    url = make_layer(str(tmp_path / "seg"), seg, offset=OFFSET, resolution=(16, 16, 40),
                     chunk=(64, 64, 16), encoding="compressed_segmentation")
    labels = np.unique(seg)
    labels = labels[labels > 0]
    chosen = RNG.choice(labels, size=len(labels) // 2, replace=False)
    targets = RNG.choice(labels, size=len(chosen))  # merge fragments into others
    mapping = {int(a): int(b) for a, b in zip(chosen, targets)}
    run_local([tc.create_remap_tasks(url, str(tmp_path / "out"), mapping,
                                     preserve_missing_labels=False, encoding="compresso")],
              progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'out'}", 0)
    assert np.array_equal(got, expected(seg, mapping, False).astype(seg.dtype))


def test_all_background(tmp_path):
    url = make_layer(str(tmp_path / "seg"), np.zeros((9, 11, 5), dtype=np.uint64, order="F"))
    run_local([tc.create_remap_tasks(url, str(tmp_path / "out"), {"0": 5})], progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'out'}", 0)
    assert np.all(got == 5)


def test_bad_input(tmp_path):
    seg = make_layer(str(tmp_path / "seg"), np.ones((8, 8, 4), dtype=np.uint64, order="F"))
    img = make_layer(str(tmp_path / "img"), np.ones((8, 8, 4), dtype=np.uint8, order="F"))
    out = str(tmp_path / "out")
    with pytest.raises(UserError, match="segmentation"):
        tc.create_remap_tasks(img, out, {"1": 2})
    with pytest.raises(UserError, match="float"):
        tc.create_remap_tasks(seg, out, {"1": 2.0**60})
    with pytest.raises(UserError, match="more than one"):
        tc.create_remap_tasks(seg, out, np.array([[1, 2], [1, 3]]))
    with pytest.raises(UserError, match="negative"):
        tc.create_remap_tasks(seg, out, np.array([[1, -2]]))
    dup = tmp_path / "dup.json"
    dup.write_text('{"1": 2, "1": 3}')
    with pytest.raises(UserError, match="twice"):
        tc.create_remap_tasks(seg, out, str(dup))
    with pytest.raises(UserError, match="does not exist"):
        tc.create_remap_tasks(seg, out, str(tmp_path / "nope.json"))
    assert not (tmp_path / "out").exists()


def test_cli(tmp_path, igneous):
    data = big_labels((25, 19, 9))
    url = make_layer(str(tmp_path / "seg"), data, offset=OFFSET, resolution=RES, chunk=(16, 16, 4))
    mapping = {BIG + 2: BIG + 4, BIG + 8: 1}
    (tmp_path / "m.json").write_text(json.dumps({str(k): v for k, v in mapping.items()}))
    queue = str(tmp_path / "queue")
    igneous("image", "remap", url, f"file://{tmp_path / 'out'}", "--mapping-file",
            tmp_path / "m.json", "--zero-missing", "--queue", queue, check=True)
    igneous("execute", "-x", "-q", queue, check=True)
    got, _ = read_mip(f"file://{tmp_path / 'out'}", 0)
    assert np.array_equal(got, expected(data, mapping, False))
    r = igneous("image", "remap", url, f"file://{tmp_path / 'o2'}", "--mapping-file",
                tmp_path / "nope.json")
    assert r.returncode != 0 and "does not exist" in r.stderr and "Traceback" not in r.stderr
