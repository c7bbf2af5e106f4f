"""Transfer, delete, design and create, checked by reading back with CloudVolume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from cloudvolume import CloudVolume

import igneous.task_creation as tc
from igneous.cli import main
from igneous.errors import UserError
from igneous.worker import run_local
from tests.volumes import BIG, average, make_layer, read_mip

RNG = np.random.default_rng(11)


def noisy(shape, dtype=np.uint8):
    return np.asfortranarray(RNG.integers(0, 255, shape).astype(dtype))


def run(plan):
    run_local([plan], progress=False)


def test_rechunk_with_downsamples(tmp_path):
    data = noisy((131, 97, 37))
    src = make_layer(str(tmp_path / "src"), data, offset=(64, 32, 5), chunk=(16, 16, 8),
                     resolution=(4, 4, 40))
    dest = f"file://{tmp_path}/dest"
    plan = tc.create_transfer_tasks(src, dest, chunk_size=(32, 32, 16), max_mips=2)
    run(plan)
    info = json.loads((tmp_path / "dest" / "info").read_text())
    assert info["scales"][0]["chunk_sizes"] == [[32, 32, 16]]
    got, off = read_mip(dest, 0)
    assert np.array_equal(off, [64, 32, 5]) and np.array_equal(got, data)
    for k in range(1, len(info["scales"])):
        expected, exp_off = average(data, (64, 32, 5), (2, 2, 1), k)
        got, off = read_mip(dest, k)
        assert np.array_equal(off, exp_off) and np.array_equal(got, expected), f"mip {k}"
    assert len(info["scales"]) == 3


def test_translate_and_dest_voxel_offset(tmp_path):
    data = noisy((40, 30, 10))
    src = make_layer(str(tmp_path / "src"), data, offset=(3, 5, 7))
    run(tc.create_transfer_tasks(src, f"file://{tmp_path}/a", translate=(-3, 11, 1),
                                 skip_downsamples=True))
    got, off = read_mip(f"file://{tmp_path}/a", 0)
    assert np.array_equal(off, [0, 16, 8]) and np.array_equal(got, data)
    run(tc.create_transfer_tasks(src, f"file://{tmp_path}/b", dest_voxel_offset=(100, 0, 0),
                                 skip_downsamples=True))
    got, off = read_mip(f"file://{tmp_path}/b", 0)
    assert np.array_equal(off, [100, 0, 0]) and np.array_equal(got, data)


def test_cutout_bounds(tmp_path):
    data = noisy((64, 64, 16))
    src = make_layer(str(tmp_path / "src"), data)
    dest = f"file://{tmp_path}/cut"
    run(tc.create_transfer_tasks(src, dest, bounds=((16, 0, 8), (48, 40, 16)), cutout=True,
                                 skip_downsamples=True))
    got, off = read_mip(dest, 0)
    assert np.array_equal(off, [16, 0, 8]) and np.array_equal(got, data[16:48, 0:40, 8:16])


def test_cli_bounds_mip_and_downsample_method(tmp_path):
    data = noisy((64, 64, 16))
    src = make_layer(str(tmp_path / "src"), data)
    run(tc.create_downsampling_tasks(src, mip=0, num_mips=1))
    dest = f"file://{tmp_path}/cut"
    # x 8..24 at mip 1 is x 16..48 at mip 0
    r = CliRunner().invoke(main, ["image", "xfer", src, dest, "--bounds-mip", "1", "--xrange",
                                  "8,24", "--cutout", "--downsample-method", "max",
                                  "--max-mips", "1"])
    assert r.exit_code == 0, r.output
    got, off = read_mip(dest, 0)
    assert np.array_equal(off, [16, 0, 0]) and np.array_equal(got, data[16:48])
    top, _ = read_mip(dest, 1)
    want = data[16:48].reshape(16, 2, 32, 2, 16).max(axis=(1, 3))
    assert np.array_equal(top, want)
    r = CliRunner().invoke(main, ["image", "xfer", src, f"file://{tmp_path}/x", "--bounds-mip", "5",
                                  "--xrange", "0,2"])
    assert r.exit_code != 0 and "mip 5 does not exist" in r.output


def test_segmentation_big_labels_compresso(tmp_path):
    lab = RNG.integers(0, 4, (45, 33, 17)).astype(np.uint64)
    lab[lab > 0] += np.uint64(BIG)
    src = make_layer(str(tmp_path / "src"), np.asfortranarray(lab), resolution=(16, 16, 40))
    dest = f"file://{tmp_path}/dest"
    run(tc.create_transfer_tasks(src, dest, encoding="compresso", chunk_size=(32, 32, 16)))
    got, _ = read_mip(dest, 0)
    assert got.dtype == np.uint64 and np.array_equal(got, lab)
    assert json.loads((tmp_path / "dest" / "info").read_text())["scales"][0]["encoding"] == "compresso"


def test_all_background(tmp_path):
    src = make_layer(str(tmp_path / "src"), np.zeros((33, 21, 5), np.uint8))
    dest = f"file://{tmp_path}/dest"
    run(tc.create_transfer_tasks(src, dest))
    got, _ = read_mip(dest, 0)
    assert got.shape == (33, 21, 5) and not got.any()


def test_fill_missing(tmp_path):
    data = noisy((32, 32, 8)) | 1
    src = make_layer(str(tmp_path / "src"), data, chunk=(16, 16, 8))
    next((tmp_path / "src" / "4_4_40").glob("0-16_0-16_0-8*")).unlink()
    from igneous.chunkio import MissingChunkError

    with pytest.raises(MissingChunkError, match="0-16_0-16_0-8 .* is missing"):
        run(tc.create_transfer_tasks(src, f"file://{tmp_path}/d1", skip_downsamples=True))
    run(tc.create_transfer_tasks(src, f"file://{tmp_path}/d2", skip_downsamples=True,
                                 fill_missing=True))
    got, _ = read_mip(f"file://{tmp_path}/d2", 0)
    assert not got[:16, :16].any() and np.array_equal(got[16:], data[16:])


def test_existing_incompatible_destination_refused(tmp_path):
    src = make_layer(str(tmp_path / "src"), noisy((32, 32, 8)))
    other = make_layer(str(tmp_path / "dest"), np.zeros((32, 32, 8), np.uint16))
    before = (tmp_path / "dest" / "info").read_text()
    with pytest.raises(UserError, match="already exists with data_type"):
        tc.create_transfer_tasks(src, other)
    assert (tmp_path / "dest" / "info").read_text() == before
    run(tc.create_transfer_tasks(src, other, overwrite_info=True, skip_downsamples=True))
    assert read_mip(other, 0)[0].dtype == np.uint8


def test_shape_must_be_chunk_multiple(tmp_path):
    src = make_layer(str(tmp_path / "src"), noisy((64, 64, 16)))
    with pytest.raises(UserError, match="try --shape 32,32,16"):
        tc.create_transfer_tasks(src, f"file://{tmp_path}/d", shape=(40, 40, 20),
                                 chunk_size=(16, 16, 8))


def test_cli_xfer_queue_and_errors(tmp_path):
    data = noisy((64, 64, 16))
    src = make_layer(str(tmp_path / "src"), data)
    q = str(tmp_path / "q")
    r = CliRunner().invoke(main, ["image", "xfer", src, f"file://{tmp_path}/d", "--chunk-size",
                                  "32,32,16", "--queue", q])
    assert r.exit_code == 0, r.output
    assert CliRunner().invoke(main, ["-p", "2", "execute", "-x", "-q", q]).exit_code == 0
    assert np.array_equal(read_mip(f"file://{tmp_path}/d", 0)[0], data)
    proc = subprocess.run([sys.executable, "-m", "igneous", "image", "xfer", src,
                           f"file://{tmp_path}/e", "--encoding", "jpeg", "--chunk-size", "1,2"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "--chunk-size" in proc.stderr


def test_delete_region_over_mips(tmp_path):
    data = noisy((64, 64, 16)) | 1
    url = make_layer(str(tmp_path / "img"), data)
    run(tc.create_downsampling_tasks(url, num_mips=1))
    run(tc.create_deletion_tasks(url, mip=0, num_mips=1, bounds=((0, 0, 0), (32, 64, 16))))
    m0, _ = read_mip(url, 0, fill_missing=True)
    m1, _ = read_mip(url, 1, fill_missing=True)
    assert not m0[:32].any() and np.array_equal(m0[32:], data[32:])
    assert not m1[:16].any() and m1[16:].all()


def test_delete_cli_whole_layer(tmp_path):
    url = make_layer(str(tmp_path / "img"), noisy((40, 40, 8)))
    r = CliRunner().invoke(main, ["image", "rm", url])
    assert r.exit_code == 0, r.output
    assert not any((tmp_path / "img" / "4_4_40").iterdir())


def test_design_calculators(tmp_path):
    url = make_layer(str(tmp_path / "img"), noisy((64, 64, 16)), chunk=(16, 16, 8))
    r = CliRunner().invoke(main, ["design", "ds-shape", url, "--shape", "64,64,8"])
    # 64*64*8 bytes + 32*32*8 + 16*16*8 (two downsamples stay >= one chunk)
    assert r.exit_code == 0 and r.output.strip() == f"{(32768 + 8192 + 2048) / 1000:.1f} kB"
    r = CliRunner().invoke(main, ["design", "ds-memory", url, "43008", "--verbose"])
    assert "Optimized Shape: 64,64,8" in r.output and "Downsamples: 2" in r.output
    r = CliRunner().invoke(main, ["design", "bounds", url])
    assert "Bbox(0,0,0, 64,64,16)" in r.output


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".ckl"])
def test_image_create_from_files(tmp_path, suffix):
    data = np.asfortranarray(RNG.integers(0, 9, (30, 20, 10)).astype(np.uint64) + np.uint64(BIG))
    path = tmp_path / f"arr{suffix}"
    if suffix == ".npy":
        np.save(path, data)
    elif suffix == ".npz":
        np.savez(path, labels=data)
    else:
        import crackle

        path.write_bytes(crackle.compress(data))
    r = CliRunner().invoke(main, ["image", "create", str(path), f"file://{tmp_path}/layer",
                                  "--resolution", "8,8,40", "--offset", "1,2,3",
                                  "--chunk-size", "16,16,8"])
    assert r.exit_code == 0, r.output
    cv = CloudVolume(f"file://{tmp_path}/layer", progress=False)
    assert cv.info["type"] == "segmentation" and list(cv.voxel_offset) == [1, 2, 3]
    assert np.array_equal(np.asarray(cv[:, :, :])[..., 0], data)


def test_image_create_seg_flag_and_encoding_level(tmp_path):
    data = np.asfortranarray(RNG.integers(0, 4, (33, 20, 9)).astype(np.uint8))
    np.save(tmp_path / "a.npy", data)
    r = CliRunner().invoke(main, ["image", "create", str(tmp_path / "a.npy"), f"file://{tmp_path}/s",
                                  "--seg", "--chunk-size", "16,16,8"])
    assert r.exit_code == 0, r.output
    cv = CloudVolume(f"file://{tmp_path}/s", progress=False)
    assert cv.info["type"] == "segmentation"
    assert np.array_equal(np.asarray(cv[:, :, :])[..., 0], data)
    r = CliRunner().invoke(main, ["image", "create", str(tmp_path / "a.npy"), f"file://{tmp_path}/j",
                                  "--encoding", "jpeg", "--encoding-level", "95",
                                  "--chunk-size", "16,16,8"])
    assert r.exit_code == 0, r.output
    cv = CloudVolume(f"file://{tmp_path}/j", progress=False)
    assert cv.info["scales"][0]["jpeg_quality"] == 95
    assert np.abs(np.asarray(cv[:, :, :])[..., 0].astype(int) - data).mean() < 2
