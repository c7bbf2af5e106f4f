"""Downsampling checked against numpy's own pooling of the source."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import igneous.task_creation as tc
from igneous.cli import main
from igneous.errors import UserError
from igneous.task_creation.image import plan_downsample
from igneous.worker import run_local
from tests.volumes import BIG, assert_is_mode, average, make_layer, read_mip, reduce

RNG = np.random.default_rng(7)


def noisy(shape, dtype=np.uint8):
    return np.asfortranarray(RNG.integers(0, 255, shape).astype(dtype))


def labels(shape, n=6, big=True):
    """Blocky labels (so modes are meaningful) with ids above 2^53."""
    coarse = RNG.integers(0, n, tuple(-(-s // 3) for s in shape))
    lab = np.kron(coarse, np.ones((3, 3, 3), dtype=np.int64))[: shape[0], : shape[1], : shape[2]]
    lab = lab.astype(np.uint64)
    if big:
        lab[lab > 0] += np.uint64(BIG)
    return np.asfortranarray(lab)


def run(passes):
    run_local(passes, progress=False)


@pytest.mark.parametrize("offset", [(16, 33, 7), (0, 0, 0)])
def test_avg_one_pass_matches_numpy(tmp_path, offset):
    data = noisy((101, 67, 13))
    url = make_layer(str(tmp_path / "img"), data, offset=offset)
    passes = plan_downsample(url, 0, 3)
    assert len(passes) == 1
    run(passes)
    for k in (1, 2, 3):
        expected, exp_off = average(data, offset, (2, 2, 1), k)
        got, got_off = read_mip(url, k)
        assert np.array_equal(got_off, exp_off)
        assert np.array_equal(got, expected), f"mip {k}"


def test_odd_offset_splits_into_passes_each_exact(tmp_path):
    data = noisy((77, 45, 9))
    url = make_layer(str(tmp_path / "img"), data, offset=(3, 5, 7))
    passes = plan_downsample(url, 0, 3)
    assert len(passes) == 3  # offset 3 (mod 4 = 3) lets each pass make one mip
    run(passes)
    prev, off = data, np.array([3, 5, 7])
    for k in (1, 2, 3):
        expected, off = average(prev, off, (2, 2, 1), 1)
        got, got_off = read_mip(url, k)
        assert np.array_equal(got_off, off)
        assert np.array_equal(got, expected), f"mip {k}"
        prev = got


def test_scales_added_to_info(tmp_path):
    url = make_layer(str(tmp_path / "img"), noisy((67, 45, 13)), offset=(3, 5, 7),
                     resolution=(4, 6, 40), chunk=(16, 16, 8))
    run(plan_downsample(url, 0, 2))
    info = json.loads((tmp_path / "img" / "info").read_text())
    s1, s2 = info["scales"][1], info["scales"][2]
    assert s1["resolution"] == [8, 12, 40] and s2["resolution"] == [16, 24, 40]
    # end = offset + size = (70, 50, 20): offset floor(o/f), stop ceil(end/f)
    assert s1["voxel_offset"] == [1, 2, 7] and s1["size"] == [34, 23, 13]
    assert s2["voxel_offset"] == [0, 1, 7] and s2["size"] == [18, 12, 13]
    assert s1["chunk_sizes"] == [[16, 16, 8]] and s1["key"] == "8_12_40"


def test_volumetric_avg(tmp_path):
    data = noisy((40, 36, 22))
    url = make_layer(str(tmp_path / "img"), data, offset=(8, 4, 0), chunk=(8, 8, 8))
    passes = plan_downsample(url, 0, 2, factor=(2, 2, 2))
    assert len(passes) == 1
    run(passes)
    for k in (1, 2):
        expected, _ = average(data, (8, 4, 0), (2, 2, 2), k)
        assert np.array_equal(read_mip(url, k)[0], expected)


@pytest.mark.parametrize("method,fn", [("min", np.min), ("max", np.max)])
def test_min_max(tmp_path, method, fn):
    data = noisy((45, 31, 5), np.uint16)
    url = make_layer(str(tmp_path / "img"), data, offset=(1, 0, 0))
    run(plan_downsample(url, 0, 2, method=method))
    prev, off = data, (1, 0, 0)
    for k in (1, 2):
        expected, off = reduce(prev, off, (2, 2, 1), fn)
        got = read_mip(url, k)[0]
        assert np.array_equal(got, expected)
        prev = got


def test_striding(tmp_path):
    data = noisy((33, 20, 4))
    url = make_layer(str(tmp_path / "img"), data)
    run(plan_downsample(url, 0, 2, method="striding"))
    assert np.array_equal(read_mip(url, 1)[0], data[::2, ::2])
    assert np.array_equal(read_mip(url, 2)[0], data[::4, ::4])


@pytest.mark.parametrize("encoding", ["raw", "compressed_segmentation", "compresso"])
def test_segmentation_mode_big_labels(tmp_path, encoding):
    data = labels((70, 52, 11))
    url = make_layer(str(tmp_path / "seg"), data, offset=(2, 1, 3), resolution=(16, 16, 40),
                     chunk=(16, 16, 8), encoding=encoding)
    run(plan_downsample(url, 0, 2))
    prev, off = data, np.array([2, 1, 3])
    for k in (1, 2):
        got, got_off = read_mip(url, k)
        assert got.dtype == np.uint64
        assert set(np.unique(got)) <= set(np.unique(data))  # ids survive exactly
        assert_is_mode(got, prev, off, (2, 2, 1))
        prev, off = got, got_off


def test_all_background_delete_bg_writes_nothing(tmp_path):
    data = np.zeros((40, 40, 8), dtype=np.uint64)
    url = make_layer(str(tmp_path / "seg"), data)
    run(plan_downsample(url, 0, 2, delete_black_uploads=True))
    for k in (1, 2):
        key = json.loads((tmp_path / "seg" / "info").read_text())["scales"][k]["key"]
        assert not (tmp_path / "seg" / key).exists() or not os.listdir(tmp_path / "seg" / key)
        got, _ = read_mip(url, k, fill_missing=True)
        assert not got.any()


def test_all_background_written(tmp_path):
    url = make_layer(str(tmp_path / "img"), np.zeros((33, 17, 3), np.uint8))
    run(plan_downsample(url, 0, 1))
    got, _ = read_mip(url, 1)  # no fill_missing: chunks must exist
    assert got.shape == (17, 9, 3) and not got.any()


def test_zrange_only_touches_region(tmp_path):
    data = noisy((32, 32, 32))
    url = make_layer(str(tmp_path / "img"), data, chunk=(16, 16, 8))
    run(plan_downsample(url, 0, 1, bounds=((0, 0, 8), (32, 32, 16))))
    got, _ = read_mip(url, 1, fill_missing=True)
    expected, _ = average(data, (0, 0, 0), (2, 2, 1), 1)
    assert np.array_equal(got[:, :, 8:16], expected[:, :, 8:16])
    assert not got[:, :, :8].any() and not got[:, :, 16:].any()


def test_scripting_api_names(tmp_path):
    data = noisy((64, 64, 8))
    url = make_layer(str(tmp_path / "img"), data)
    tasks = tc.create_downsampling_tasks(url, mip=0, num_mips=2, fill_missing=False,
                                         preserve_chunk_size=True, compress="gzip")
    assert len(tasks) == len(list(tasks)) > 0
    for t in tasks:
        t.execute()
    assert np.array_equal(read_mip(url, 2)[0], average(data, (0, 0, 0), (2, 2, 1), 2)[0])


def test_cli_through_durable_queue(tmp_path):
    data = noisy((64, 48, 16))
    url = make_layer(str(tmp_path / "img"), data, offset=(32, 0, 4))
    q = str(tmp_path / "q")
    r = CliRunner().invoke(main, ["image", "downsample", url, "--num-mips", "2", "--queue", q])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["execute", "-x", "-q", q])
    assert r.exit_code == 0, r.output
    for k in (1, 2):
        assert np.array_equal(read_mip(url, k)[0], average(data, (32, 0, 4), (2, 2, 1), k)[0])


@pytest.mark.parametrize("compress,suffix", [("none", ""), ("gzip", ".gz"), ("br", ".br")])
def test_cli_compress_choice_is_what_lands_on_disk(tmp_path, compress, suffix):
    data = noisy((64, 48, 16))
    url = make_layer(str(tmp_path / "img"), data)
    r = CliRunner().invoke(main, ["image", "downsample", url, "--num-mips", "1",
                                  "--compress", compress])
    assert r.exit_code == 0, r.output
    names = [p.name for p in (tmp_path / "img" / "8_8_40").iterdir()]
    assert names and all(n.endswith(suffix) and n.count(".") == suffix.count(".") for n in names)
    assert np.array_equal(read_mip(url, 1)[0], average(data, (0, 0, 0), (2, 2, 1), 1)[0])


def test_memory_target_limits_mips_per_task(tmp_path):
    url = make_layer(str(tmp_path / "img"), noisy((256, 256, 8)), chunk=(32, 32, 8))
    passes = plan_downsample(url, 0, 3, memory_target=2**17)
    assert len(passes) > 1
    run(passes)
    assert read_mip(url, 3)[0].shape == (32, 32, 8)


# -- bad input ---------------------------------------------------------------

def cli_error(args) -> str:
    """Run the real console script; assert a one-line error and no traceback."""
    proc = subprocess.run([sys.executable, "-m", "igneous", *args], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_inputs_are_refused_cleanly(tmp_path):
    url = make_layer(str(tmp_path / "seg"), labels((20, 20, 8)))
    img = make_layer(str(tmp_path / "img"), noisy((20, 20, 8)))
    before = (tmp_path / "seg" / "info").read_text()
    assert "no layer" in cli_error(["image", "downsample", f"file://{tmp_path}/missing"])
    assert "jpeg" in cli_error(["image", "downsample", url, "--encoding", "jpeg"])
    assert "segmentation" in cli_error(["image", "downsample", img, "--encoding", "compressed_segmentation"])
    assert "mip 9" in cli_error(["image", "downsample", url, "--mip", "9"])
    assert "outside" in cli_error(["image", "downsample", url, "--zrange", "100,200"])
    assert "factor" in cli_error(["image", "downsample", url, "--factor", "1,1,1"])
    assert (tmp_path / "seg" / "info").read_text() == before  # nothing written
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "info").write_text("{not json")
    assert "info" in cli_error(["image", "downsample", f"file://{tmp_path}/bad"])


def test_existing_mip_with_other_resolution_refused(tmp_path):
    url = make_layer(str(tmp_path / "img"), noisy((64, 64, 16)), chunk=(16, 16, 8))
    run(plan_downsample(url, 0, 1))
    with pytest.raises(UserError, match="already exists with resolution"):
        plan_downsample(url, 0, 1, factor=(2, 2, 2))
