"""Starting and stopping the emulator servers tests use (moto, GCS)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_at(path: str) -> Callable[[str], bool]:
    """A readiness check for ``background_server``: does anything answer an
    HTTP GET of ``URL + path`` (an HTTP error status counts as an answer)?"""
    import urllib.error
    import urllib.request

    def answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url + path, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answered, even if with an error
        except OSError:
            return False

    return answers


# moto_server's readiness endpoint
MOTO_READY = answers_at("/moto-api/")


@contextmanager
def background_server(argv: Sequence[str], url: str, answers: Callable[[str], bool], log: Path,
                      name: str, timeout: float = 30) -> Iterator[str]:
    """Run ``argv`` (a server on 127.0.0.1) until it answers at ``url``; yield
    the url; stop it by PID (SIGTERM, then SIGKILL) afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not answers(url):
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer on {url} within {timeout:.0f} s")
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


class Bucket(NamedTuple):
    """A fresh bucket on an emulator: unpacks to ``(endpoint, name)``; ``.url``
    is ``SCHEME://NAME`` (subclasses set ``scheme``)."""

    endpoint: str
    name: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.name}"

    @property
    def scheme(self) -> str:
        raise NotImplementedError


def fresh_bucket_name() -> str:
    return f"igneous-test-{uuid.uuid4().hex[:12]}"
