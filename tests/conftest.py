"""Shared fixtures: a local S3/SQS emulator and helpers to run the CLI.

Everything that points code at the emulator is an environment variable (or a
file named by one), so subprocesses -- ``igneous`` on the command line,
CloudVolume in another interpreter -- see the same configuration:

- ``AWS_ENDPOINT_URL``: boto3 (and therefore cloud-files for plain ``s3://``
  paths, and our SQS backend) talks to the emulator;
- fake ``AWS_*`` credentials, and AWS config files redirected to an empty
  temporary directory, so a real AWS account is never touched;
- ``CLOUD_FILES_DIR`` / ``CLOUD_VOLUME_DIR`` in a temporary directory holding an
  ``aliases.json`` that maps ``moto://BUCKET/...`` to the emulator (read at
  import time, so it only applies to processes started after the fixture).

Fixtures for other test modules: ``moto_server`` (endpoint URL), ``aws_env``,
``s3_bucket`` (an ``S3Bucket``: unpacks to ``(endpoint, name)``, with ``.url``
= ``s3://NAME``), ``sqs_queue`` (a fresh ``sqs://NAME`` spec), ``closed_port``
and ``igneous`` (runs the CLI in a subprocess). The GCS emulator's fixtures
(``gcs_server``, ``gcs_env``, ``gcs_bucket``) live in tests/gcs_server.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.gcs_server import gcs_bucket, gcs_env, gcs_server  # noqa: F401 - the GCS emulator
from tests.pg_server import pg_server  # noqa: F401 - the PostgreSQL server fixture
from tests.servers import MOTO_READY, Bucket, background_server, free_port, fresh_bucket_name

MOTO_ALIAS = "moto"
AWS_ENV_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
    "IGNEOUS_SQS_ENDPOINT",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def pytest_configure(config) -> None:
    """Run reports (igneous.cost) of the tests' runs go to a temporary
    directory, not the user's ~/.local/state (tests that read them set their own)."""
    import tempfile

    os.environ.setdefault("IGNEOUS_REPORT_DIR", tempfile.mkdtemp(prefix="igneous-reports-"))


def pytest_collection_modifyitems(config, items) -> None:
    """``slow`` tests run only with IGNEOUS_SLOW=1 or when ``-m`` names them."""
    if os.environ.get("IGNEOUS_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow storm: set IGNEOUS_SLOW=1 or pass -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@contextmanager
def running_moto(log: Path) -> Iterator[str]:
    """``moto_server`` on a free 127.0.0.1 port, stopped by PID on exit (bench/ uses it too)."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with background_server(argv, f"http://127.0.0.1:{port}", MOTO_READY, log, "moto_server") as url:
        yield url


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Iterator[str]:
    """Start ``moto_server`` on a free 127.0.0.1 port; yield its endpoint URL."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    with running_moto(tmp_path_factory.mktemp("moto") / "moto_server.log") as url:
        yield url


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point every AWS client (this process and its children) at the emulator."""
    home = tmp_path / "aws-home"
    cloudfiles_dir = home / "cloudfiles"
    cloudfiles_dir.mkdir(parents=True)
    (cloudfiles_dir / "aliases.json").write_text(
        json.dumps({MOTO_ALIAS: {"host": f"s3://{moto_server}/"}})
    )
    for name in AWS_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",  # cloud-files requires it with env credentials
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CLOUD_FILES_DIR": str(cloudfiles_dir),
        "CLOUD_VOLUME_DIR": str(home / "cloudvolume"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return moto_server


class S3Bucket(Bucket):
    """``.url`` = ``s3://NAME`` reaches the emulator through $AWS_ENDPOINT_URL."""

    scheme = "s3"

    @property
    def alias_url(self) -> str:
        """``moto://NAME``: the cloud-files alias (processes started after the fixture)."""
        return f"{MOTO_ALIAS}://{self.name}"

    @property
    def endpoint_url(self) -> str:
        """``s3://http://HOST:PORT/NAME``: the endpoint spelled out in the path."""
        return f"s3://{self.endpoint}/{self.name}"


@pytest.fixture
def s3_bucket(aws_env: str) -> S3Bucket:
    """A fresh, empty bucket on the emulator."""
    import boto3

    name = fresh_bucket_name()
    boto3.client("s3").create_bucket(Bucket=name)
    return S3Bucket(aws_env, name)


@pytest.fixture
def sqs_queue(aws_env: str) -> str:
    """A fresh queue name (not yet created) on the emulator, as ``sqs://NAME``."""
    return f"sqs://igneous-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on."""
    return free_port()


@pytest.fixture
def igneous():
    """Run ``igneous ARGS...`` in a subprocess; returns the CompletedProcess."""

    def run(
        *args: str,
        timeout: float = 60,
        input: str | None = None,
        env: dict | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "igneous", *map(str, args)],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=None if env is None else {**os.environ, **env},
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"igneous {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
            )
        return proc

    return run
