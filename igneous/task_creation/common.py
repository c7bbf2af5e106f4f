"""What every planner shares: lazy task plans and the memory target."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from igneous.memory import default_memory_target
from igneous.tasks import Task

# bytes a single task may use (1/4 of this machine's memory unless
# IGNEOUS_MEMORY_TARGET says otherwise); see `igneous design ds-memory`
DEFAULT_MEMORY_TARGET = default_memory_target()
# gzip level of chunk files: zlib's default. Level 9 (CloudVolume's) took 5x
# the CPU on real segmentation chunks for files 16% smaller (docs/benchmarks.md)
COMPRESS_LEVEL = 6
# decode buffers and pooling temporaries on top of the block and its mips
MEMORY_OVERHEAD = 2.0


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


def note(message: str) -> None:
    """A planner's remark to the user (stderr, never stdout)."""
    print(f"igneous: {message}", file=sys.stderr)
