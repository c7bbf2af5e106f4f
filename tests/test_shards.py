"""Sharded transfer and downsample: read back through CloudVolume equal to the
source and to the unsharded computation."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import igneous.task_creation as tc
from igneous.cli import main
from igneous.errors import UserError
from igneous.task_creation.image import plan_downsample
from igneous.worker import run_local
from tests.volumes import BIG, average, make_layer, read_mip

RNG = np.random.default_rng(5)
SMALL = 2**20  # a tiny memory target: many shards per mip


def files_of(root, key):
    return sorted(os.listdir(os.path.join(root, key)))


def test_sharded_transfer_reads_back(tmp_path):
    data = np.asfortranarray(RNG.integers(0, 255, (150, 101, 37), dtype=np.uint8))
    src = make_layer(str(tmp_path / "src"), data, offset=(3, 5, 7), chunk=(16, 16, 8))
    dest = f"file://{tmp_path}/dest"
    plan = tc.create_image_shard_transfer_tasks(src, dest, memory_target=SMALL)
    assert len(plan) > 1
    run_local([plan], progress=False)
    info = json.loads((tmp_path / "dest" / "info").read_text())
    assert info["scales"][0]["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    names = files_of(tmp_path / "dest", info["scales"][0]["key"])
    assert names and all(n.endswith(".shard") for n in names)
    got, off = read_mip(dest, 0)
    assert np.array_equal(off, [3, 5, 7]) and np.array_equal(got, data)


def test_sharded_downsample_equals_unsharded(tmp_path):
    data = np.asfortranarray(RNG.integers(0, 255, (130, 90, 20), dtype=np.uint8))
    a = make_layer(str(tmp_path / "a"), data, offset=(16, 0, 3), chunk=(16, 16, 4))
    b = make_layer(str(tmp_path / "b"), data, offset=(16, 0, 3), chunk=(16, 16, 4))
    passes = tc.plan_shard_downsample(a, 0, 2, memory_target=SMALL)
    assert len(passes) == 2 and len(passes[0]) > 1
    run_local(passes, progress=False)
    # same pass structure unsharded: one mip per pass
    run_local(plan_downsample(b, 0, 1), progress=False)
    run_local(plan_downsample(b, 1, 1), progress=False)
    prev, off = data, (16, 0, 3)
    for k in (1, 2):
        sharded, unsharded = read_mip(a, k)[0], read_mip(b, k)[0]
        assert np.array_equal(sharded, unsharded), f"mip {k}"
        expected, off = average(prev, off, (2, 2, 1), 1)  # one mip per pass
        assert np.array_equal(sharded, expected)
        prev = sharded
    info = json.loads((tmp_path / "a" / "info").read_text())
    assert all("sharding" in s for s in info["scales"][1:])


def test_sharded_segmentation_big_labels(tmp_path):
    lab = RNG.integers(0, 5, (70, 66, 30)).astype(np.uint64)
    lab[lab > 0] += np.uint64(BIG)
    lab = np.asfortranarray(lab)
    src = make_layer(str(tmp_path / "src"), lab, resolution=(16, 16, 40), chunk=(16, 16, 16))
    dest = f"file://{tmp_path}/dest"
    run_local([tc.create_image_shard_transfer_tasks(src, dest, encoding="compressed_segmentation",
                                                    memory_target=SMALL)], progress=False)
    run_local(tc.plan_shard_downsample(dest, 0, 1, memory_target=SMALL), progress=False)
    run_local(plan_downsample(src, 0, 1), progress=False)
    assert np.array_equal(read_mip(dest, 0)[0], lab)
    assert np.array_equal(read_mip(dest, 1)[0], read_mip(src, 1)[0])


def test_cli_sharded_xfer_with_downsamples_in_stages(tmp_path):
    data = np.asfortranarray(RNG.integers(0, 255, (128, 128, 16), dtype=np.uint8))
    src = make_layer(str(tmp_path / "src"), data, chunk=(16, 16, 8))
    q = str(tmp_path / "q")
    dest = f"file://{tmp_path}/dest"
    r = CliRunner().invoke(main, ["image", "xfer", src, dest, "--sharded", "--max-mips", "2",
                                  "--memory", str(SMALL), "--queue", q])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["queue", "status", "--json", q])
    assert len(json.loads(r.output)["stages"]) == 3  # transfer, then one stage per mip
    assert CliRunner().invoke(main, ["-p", "2", "execute", "-x", "-q", q]).exit_code == 0
    assert np.array_equal(read_mip(dest, 0)[0], data)
    prev = data
    for k in (1, 2):  # sharded mips are made one per pass, each from the mip below
        got = read_mip(dest, k)[0]
        assert np.array_equal(got, average(prev, (0, 0, 0), (2, 2, 1), 1)[0])
        prev = got


def test_sharded_downsample_refuses_unsharded_mip(tmp_path):
    url = make_layer(str(tmp_path / "img"), np.zeros((64, 64, 8), np.uint8), chunk=(16, 16, 8))
    run_local(plan_downsample(url, 0, 1), progress=False)
    before = (tmp_path / "img" / "info").read_text()
    with pytest.raises(UserError, match="exists unsharded"):
        tc.plan_shard_downsample(url, 0, 1)
    assert (tmp_path / "img" / "info").read_text() == before
