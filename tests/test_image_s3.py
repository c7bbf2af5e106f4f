"""Downsample and transfer with source and destination on S3 (local moto_server)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from cloudvolume import CloudVolume

from tests.volumes import average


def igneous(*args):
    proc = subprocess.run([sys.executable, "-m", "igneous", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def random_image(path: str, shape, offset, seed: int) -> np.ndarray:
    """A uint8 image layer of random voxels at ``path`` (chunks 16x16x8); its voxels."""
    data = np.asfortranarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8))
    info = CloudVolume.create_new_info(1, "image", "uint8", "raw", [4, 4, 40], list(offset),
                                       list(shape), chunk_size=[16, 16, 8])
    cv = CloudVolume(path, info=info, progress=False)
    cv.commit_info()
    cv[tuple(slice(o, o + n) for o, n in zip(offset, shape))] = data
    return data


def check_downsample_and_xfer(root: str, tmp_path) -> np.ndarray:
    """Downsample ``ROOT/img`` and copy it to ``ROOT/copy`` through a queue and
    two workers; check both with CloudVolume; return the mip-0 voxels."""
    src = f"{root}/img"
    data = random_image(src, (70, 45, 12), (16, 0, 4), seed=3)

    q = str(tmp_path / "q")
    igneous("image", "downsample", src, "--num-mips", "2", "--queue", q)
    igneous("image", "xfer", src, f"{root}/copy", "--chunk-size", "32,32,8",
            "--max-mips", "1", "--queue", q)
    igneous("-p", "2", "execute", "-x", "-q", q)

    for k in (1, 2):
        got = np.asarray(CloudVolume(src, mip=k, progress=False)[:, :, :])[..., 0]
        assert np.array_equal(got, average(data, (16, 0, 4), (2, 2, 1), k)[0])
    copy = CloudVolume(f"{root}/copy", progress=False)
    assert copy.info["scales"][0]["chunk_sizes"] == [[32, 32, 8]]
    assert np.array_equal(np.asarray(copy[:, :, :])[..., 0], data)
    return data


def test_downsample_and_xfer_on_s3(s3_bucket, tmp_path):
    check_downsample_and_xfer(s3_bucket.url, tmp_path)


def test_sharded_downsample_on_s3(s3_bucket, tmp_path):
    """Sharded mips are written by CloudVolume's shard writer, which hands its
    cdn_cache setting to the client as the Cache-Control header: it must be a
    header string (boto refuses a bool, so every task failed on S3)."""
    src = f"{s3_bucket.url}/img"
    data = random_image(src, (64, 48, 16), (0, 16, 8), seed=5)
    q = str(tmp_path / "q")
    igneous("image", "downsample", src, "--sharded", "--num-mips", "2", "--memory", "256K",
            "--queue", q)
    igneous("-p", "2", "execute", "-x", "--max-attempts", "1", "-q", q)
    prev, off = data, (0, 16, 8)
    for k in (1, 2):
        out = CloudVolume(src, mip=k, progress=False)
        assert "sharding" in out.info["scales"][k]
        expected, off = average(prev, off, (2, 2, 1), 1)  # one mip per pass
        prev = np.asarray(out[:, :, :])[..., 0]
        assert np.array_equal(prev, expected)
