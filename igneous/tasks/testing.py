"""Tiny tasks used by tests, benchmarks and health checks of a queue."""

from __future__ import annotations

import os
import time


def noop() -> None:
    """Do nothing (measures queue overhead)."""


def touch(path: str) -> None:
    """Create an empty marker file atomically (idempotent)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb"):
        pass
    os.replace(tmp, path)


def record(url: str, key: str, seconds: float = 0.0) -> None:
    """Leave one empty object per execution, ``url/key/TIME-PID-UNIQUE``
    (TIME: when it finished, Unix seconds), after ``seconds`` of work: a
    listing tells how often and when the task ran, on any storage
    (bench/workers.py)."""
    import uuid

    from igneous.storage import open_store

    if seconds:
        time.sleep(seconds)
    open_store(url).put(f"{key}/{time.time():.6f}-{os.getpid()}-{uuid.uuid4().hex[:8]}", b"")


def sleep(seconds: float, path: str | None = None) -> None:
    """Sleep, then optionally write a marker: a stand-in for a long task."""
    time.sleep(seconds)
    if path:
        touch(path)


def allocate(nbytes: int, path: str | None = None) -> None:
    """Touch ``nbytes`` of memory (a task that can exhaust a worker's memory)."""
    import numpy as np

    block = np.ones(int(nbytes), dtype=np.uint8)
    del block
    if path:
        touch(path)


def crash() -> None:
    """Kill this worker process outright, as the OOM killer would."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def fail(message: str = "this task always fails") -> None:
    """Always raise: a poison task."""
    raise RuntimeError(message)
