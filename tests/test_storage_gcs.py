"""Layers on GCS, for real, against the emulator (tests/gcs_server.py): our
planners and workers in subprocesses write through the Store, CloudVolume
(in this process and in a fresh one) reads back what was written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
from cloudvolume import CloudVolume

from igneous.storage import open_store
from tests.volumes import average


def igneous(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "igneous", *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_downsample_and_xfer_on_gcs(gcs_bucket, tmp_path):
    rng = np.random.default_rng(5)
    data = np.asfortranarray(rng.integers(0, 255, (70, 45, 12), dtype=np.uint8))
    src = f"{gcs_bucket.url}/img"
    info = CloudVolume.create_new_info(1, "image", "uint8", "raw", [4, 4, 40], [16, 0, 4],
                                       list(data.shape), chunk_size=[16, 16, 8])
    cv = CloudVolume(src, info=info, progress=False)
    cv.commit_info()
    cv[16:86, 0:45, 4:16] = data

    q = str(tmp_path / "q")
    igneous("image", "downsample", src, "--num-mips", "2", "--queue", q)
    igneous("image", "xfer", src, f"{gcs_bucket.url}/copy", "--chunk-size", "32,32,8",
            "--max-mips", "1", "--queue", q)
    igneous("-p", "2", "execute", "-x", "-q", q)

    for k in (1, 2):
        got = np.asarray(CloudVolume(src, mip=k, progress=False)[:, :, :])[..., 0]
        assert np.array_equal(got, average(data, (16, 0, 4), (2, 2, 1), k)[0])
    # the chunks are gzipped objects (Content-Encoding), as CloudVolume writes them
    store = open_store(f"{gcs_bucket.url}/copy")
    first = next(k for k in store.list() if k != "info")
    stored = store.get_stored(first)
    assert stored is not None and stored.compression == "gzip"

    # a fresh interpreter, configured by nothing but the environment, reads the copy
    npy = tmp_path / "expected.npy"
    np.save(npy, data)
    code = f"""
        import numpy as np
        from cloudvolume import CloudVolume
        copy = CloudVolume({gcs_bucket.url + '/copy'!r}, progress=False)
        assert copy.info["scales"][0]["chunk_sizes"] == [[32, 32, 8]], copy.info
        assert np.array_equal(np.asarray(copy[:, :, :])[..., 0], np.load({str(npy)!r}))
        print("ok")
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
