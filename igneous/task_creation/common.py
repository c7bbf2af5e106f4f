"""What every planner shares: lazy task plans and the memory target."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from igneous.memory import default_memory_target
from igneous.tasks import Task

# bytes a single task may use (1/4 of this machine's memory unless
# IGNEOUS_MEMORY_TARGET says otherwise); see `igneous design ds-memory`
DEFAULT_MEMORY_TARGET = default_memory_target()
# gzip level of chunk files: None = by layer type (igneous.chunkio.default_gzip_level)
COMPRESS_LEVEL = None


class TaskPlan:
    """A lazily generated, re-iterable sequence of tasks with a known length.

    A plan of a million tasks costs nothing until iterated; ``len()`` feeds
    progress bars.
    """

    def __init__(self, make: Callable[[], Iterator[Task]], length: int, description: str = ""):
        self._make = make
        self._length = int(length)
        self.description = description

    def __iter__(self) -> Iterator[Task]:
        return self._make()

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"TaskPlan({self.description!r}, {self._length} tasks)"


# a keyword whose JSON is larger than this is stored beside the layer instead of
# in every payload (SQS messages are limited to 256 KB; a queue of a million
# tasks should not carry the same label list a million times)
LARGE_ARG_BYTES = 16 * 1024
ARGS_DIR = "igneous_task_args"


def store_large_args(kwargs: dict, cloudpath: str) -> dict:
    """``kwargs`` with each large value written once to
    ``CLOUDPATH/igneous_task_args/SHA256.json`` (content-addressed, so
    planning twice writes the same file) and replaced by a pointer the worker
    follows (``igneous.tasks.load_arg``)."""
    import hashlib
    import json

    from igneous.tasks import ARG_FILE

    out = dict(kwargs)
    for key, value in kwargs.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            continue
        data = json.dumps(value, separators=(",", ":")).encode()
        if len(data) <= LARGE_ARG_BYTES:
            continue
        from igneous.storage import join, open_store

        name = f"{hashlib.sha256(data).hexdigest()}.json"
        base = join(cloudpath, ARGS_DIR)
        store = open_store(base)
        if not store.exists(name):
            store.put(name, data, compress=False)
        out[key] = {ARG_FILE: join(base, name)}
    return out


def fit_shape(shape, memory_target: float, bytes_per_voxel: float, *, what: str, limit=None):
    """``shape``, with its longest axis halved until a task of that shape fits
    ``memory_target`` at ``bytes_per_voxel`` (the task's measured peak use per
    voxel of its block, decoders and temporaries included). ``limit`` (the
    volume's size) caps what one task can really hold. Halving keeps the shape
    a multiple of any power-of-two chunk size that divided it."""
    import numpy as np

    from igneous import validate

    memory_target = validate.memory_target(memory_target)
    given = np.asarray(shape, dtype=np.int64)
    start = given if limit is None else np.minimum(given, np.asarray(limit, dtype=np.int64))
    out = start.copy()
    while float(np.prod(out)) * bytes_per_voxel > memory_target and out.max() > 1:
        i = int(np.argmax(out))
        out[i] = max(1, out[i] // 2)
    if np.all(out == start):
        return given
    need = float(np.prod(start)) * bytes_per_voxel
    note(f"{what}: a {'x'.join(map(str, start))} task would need ~{_size(need)}; using "
         f"{'x'.join(map(str, out))} to fit the memory target of {_size(memory_target)} (--memory)")
    return out


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def note(message: str) -> None:
    """A planner's remark to the user (stderr, never stdout)."""
    print(f"igneous: {message}", file=sys.stderr)
