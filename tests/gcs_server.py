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

gcp-storage-emulator (2026.7) does not send an object's Content-Encoding with
its media downloads, which real GCS does and which cloud-files needs to know
that a stored object is gzipped; run as a script, this module starts the
emulator with that header added (nothing else changes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import NamedTuple

import pytest

GCS_ENV_CLEARED = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/storage/v1/b", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory):
    """Start the emulator on a free 127.0.0.1 port; yield its endpoint URL."""
    pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed")
    from tests.conftest import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("gcs") / "gcs_emulator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, __file__, str(port)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if proc.poll() is not None:
                pytest.fail(f"gcp-storage-emulator exited with {proc.returncode}: "
                            f"{log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"gcp-storage-emulator did not answer on {url} within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


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


class GCSBucket(NamedTuple):
    endpoint: str
    name: str

    @property
    def url(self) -> str:
        """``gs://NAME``: reaches the emulator through $STORAGE_EMULATOR_HOST."""
        return f"gs://{self.name}"


@pytest.fixture
def gcs_bucket(gcs_env: str) -> GCSBucket:
    """A fresh, empty bucket on the emulator."""
    import json

    name = f"igneous-test-{uuid.uuid4().hex[:12]}"
    request = urllib.request.Request(f"{gcs_env}/storage/v1/b?project=test",
                                     data=json.dumps({"name": name}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return GCSBucket(gcs_env, name)


def _serve(port: int) -> None:
    """Run the emulator, in memory, with downloads carrying their Content-Encoding."""
    from http import HTTPStatus
    from typing import Any

    from gcp_storage_emulator.handlers import objects

    plain_download = objects.download

    def download(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        plain_download(request, response, storage, *args, **kwargs)
        if response.status not in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
            return
        try:
            obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except Exception:
            return
        if obj.get("contentEncoding"):
            response["Content-Encoding"] = obj["contentEncoding"]

    objects.download = download  # before the server module builds its routes
    from gcp_storage_emulator.__main__ import main

    main(["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"])


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
