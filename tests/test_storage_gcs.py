"""Layers on GCS, for real, against the emulator (tests/gcs_server.py): our
planners and workers in subprocesses write through the Store, CloudVolume
(in this process and in a fresh one) reads back what was written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

from igneous.storage import open_store
from tests.test_image_s3 import check_downsample_and_xfer


def test_downsample_and_xfer_on_gcs(gcs_bucket, tmp_path):
    data = check_downsample_and_xfer(gcs_bucket.url, tmp_path)
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
