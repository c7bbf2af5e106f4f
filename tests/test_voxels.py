"""Voxel counts checked against numpy's counts of the whole array."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from cloudfiles import CloudFile
from mapbuffer import IntMap

import igneous.task_creation as tc
from igneous import sample
from igneous.cli import main
from igneous.errors import UserError
from igneous.worker import run_local
from tests.volumes import BIG, make_layer

RNG = np.random.default_rng(5)


def numpy_counts(data: np.ndarray) -> dict[int, int]:
    labels, counts = np.unique(data, return_counts=True)
    return {int(k): int(v) for k, v in zip(labels, counts)}


def stored(url: str, key: str = "4_4_40") -> dict[int, int]:
    im = IntMap(CloudFile(f"{url}/{key}/stats/voxel_counts.im").get())
    return {int(k): int(v) for k, v in im.items()}


def test_big_labels_odd_blocks(tmp_path):
    data = RNG.integers(0, 50, (45, 33, 19)).astype(np.uint64)
    data[data > 0] += np.uint64(BIG)  # distinct labels that collide as float64
    data[0, 0, 0] = np.uint64(2**64 - 1)
    data[1, 0, 0] = np.uint64(2**64 - 2)
    url = make_layer(str(tmp_path / "seg"), data, offset=(3, 9, 2), resolution=(4, 4, 40),
                     chunk=(8, 8, 8))
    run_local([tc.create_voxel_counting_tasks(url, mip=0, shape=(16, 16, 8))], progress=False)
    assert tc.accumulate_voxel_counts(url, 0, compress="gzip") == len(np.unique(data))
    got = stored(url)
    assert got == numpy_counts(data)
    assert got[2**64 - 1] == 1 and got[2**64 - 2] == 1


def test_connectomics_equals_bincount(tmp_path):
    data = sample.connectomics()
    if data is None:
        pytest.skip("connectomics sample is not on this machine")
    data = np.asfortranarray(data[256:384, 256:384, 256:320])  # ~110 labels
    url = make_layer(str(tmp_path / "seg"), data, resolution=(16, 16, 40), chunk=(64, 64, 32),
                     encoding="compressed_segmentation")
    run_local([tc.create_voxel_counting_tasks(url, 0, shape=(64, 64, 64))], parallel=2,
              progress=False)
    tc.accumulate_voxel_counts(url, 0, progress=False)
    bins = np.bincount(data.ravel())
    expected = {int(k): int(bins[k]) for k in np.flatnonzero(bins)}
    assert stored(url, "16_16_40") == expected


def test_cli_count_sum_and_local_copy(tmp_path):
    data = RNG.integers(0, 7, (30, 20, 10)).astype(np.uint16)
    url = make_layer(str(tmp_path / "seg"), data, chunk=(10, 10, 10), layer_type="segmentation")
    q, out = str(tmp_path / "q"), tmp_path / "counts.im"
    runner = CliRunner()
    for args in (["image", "voxels", "count", url, "--queue", q, "--shape", "20,10,10"],
                 ["execute", "-x", "-q", q],
                 ["image", "voxels", "sum", url, "-o", str(out), "--compress", "none"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 0, r.output
    local = IntMap(out.read_bytes())
    assert {int(k): int(v) for k, v in local.items()} == numpy_counts(data)
    # stored uncompressed: readable in place, without downloading the whole file
    remote = IntMap(CloudFile(f"{url}/4_4_40/stats/voxel_counts.im"))
    assert remote[3] == int((data == 3).sum())


def test_all_background(tmp_path):
    url = make_layer(str(tmp_path / "seg"), np.zeros((17, 9, 5), np.uint32), chunk=(8, 8, 8))
    run_local([tc.create_voxel_counting_tasks(url, 0)], progress=False)
    tc.accumulate_voxel_counts(url, 0)
    assert stored(url) == {0: 17 * 9 * 5}


def test_bad_input(tmp_path):
    data = RNG.integers(0, 3, (16, 16, 8)).astype(np.uint32)
    url = make_layer(str(tmp_path / "seg"), data, chunk=(8, 8, 8))
    with pytest.raises(UserError, match="voxels count"):
        tc.accumulate_voxel_counts(url, 0)  # sum before count
    plan = tc.create_voxel_counting_tasks(url, 0, shape=(8, 8, 8))
    run_local([list(plan)[:3]], progress=False)  # only some blocks counted
    with pytest.raises(UserError, match="1 of 4 blocks"):
        tc.accumulate_voxel_counts(url, 0)
    runner = CliRunner()
    for args, says in ((["image", "voxels", "count", str(tmp_path / "none")], "no layer"),
                       (["image", "voxels", "count", url, "--mip", "2"], "mip 2 does not exist"),
                       (["image", "voxels", "sum", url, "--mip", "1"], "mip 1 does not exist")):
        r = runner.invoke(main, args)
        assert r.exit_code == 1 and says in r.output, r.output
    img = make_layer(str(tmp_path / "img"), RNG.random((8, 8, 8)).astype(np.float32),
                     chunk=(8, 8, 8))
    with pytest.raises(UserError, match="integer label"):
        tc.create_voxel_counting_tasks(img, 0)
