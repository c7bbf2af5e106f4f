"""A GCS emulator for tests: ``gcp-storage-emulator`` on 127.0.0.1.

Fixtures (registered in tests/conftest.py):

- ``gcs_server``: the emulator's endpoint URL (one per session, in memory,
  stopped by PID);
- ``gcs_env``: points cloud-files, google-cloud-storage and CloudVolume, in
  this process and in subprocesses, at the emulator through environment
  variables only: ``STORAGE_EMULATOR_HOST`` (google-cloud-storage then uses
  anonymous credentials and no project), ``CLOUD_FILES_DIR`` /
  ``CLOUD_VOLUME_DIR`` in a temporary directory (no real secrets are read)
  and ``GOOGLE_APPLICATION_CREDENTIALS`` unset;
- ``gcs_bucket``: a fresh empty bucket (a ``GCSBucket``; ``.url`` = ``gs://NAME``).

The emulator runs as ``python tests/gcs_emulator.py PORT`` (see there why).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.servers import Bucket, answers_at, background_server, free_port, fresh_bucket_name

GCS_ENV_CLEARED = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory):
    """Start the emulator on a free 127.0.0.1 port; yield its endpoint URL."""
    pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("gcs") / "gcs_emulator.log"
    argv = [sys.executable, str(Path(__file__).with_name("gcs_emulator.py")), str(port)]
    with background_server(argv, f"http://127.0.0.1:{port}", answers_at("/storage/v1/b"), log,
                           "gcp-storage-emulator") as url:
        yield url


@pytest.fixture
def gcs_env(gcs_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point every GCS client (this process and its children) at the emulator."""
    home = tmp_path / "gcs-home"
    (home / "secrets").mkdir(parents=True)
    for name in GCS_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    monkeypatch.setenv("CLOUD_FILES_DIR", str(home))
    monkeypatch.setenv("CLOUD_VOLUME_DIR", str(home))
    return gcs_server


class GCSBucket(Bucket):
    """``.url`` = ``gs://NAME`` reaches the emulator through $STORAGE_EMULATOR_HOST."""

    scheme = "gs"


@pytest.fixture
def gcs_bucket(gcs_env: str) -> GCSBucket:
    """A fresh, empty bucket on the emulator."""
    import json

    name = fresh_bucket_name()
    request = urllib.request.Request(f"{gcs_env}/storage/v1/b?project=test",
                                     data=json.dumps({"name": name}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return GCSBucket(gcs_env, name)
