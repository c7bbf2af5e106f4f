"""How much memory one task may use.

Planners pick task shapes to fit a memory target. The default is a quarter of
this machine's memory (or of the container's cgroup limit, which is what a
Kubernetes pod or a SLURM job really has), so a laptop and a 256 GB node both
get shapes they can run with a few workers side by side. ``--memory`` on any
planning command, or ``IGNEOUS_MEMORY_TARGET`` in the environment, overrides
it. The planner's machine decides; plan on a machine like your workers.
"""

from __future__ import annotations

import os
import re

from igneous.errors import UserError

MEMORY_FRACTION = 0.25
MIN_TARGET = 256 * 2**20
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)

# a task's memory on top of its block and the mips made from it (decode
# buffers, pooling temporaries); planners size blocks with it
MEMORY_OVERHEAD = 2.0


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number means no limit
            return int(text)
    return None


def machine_memory() -> int:
    """Bytes of memory this process can have: physical RAM or the cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit()
    return min(total, limit) if limit else total


def parse_memory(value: str | float | int) -> int:
    """``4e9``, ``3.5G``, ``512MiB``, ``2GB`` -> bytes."""
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise UserError(f"memory size {value!r} not understood; write e.g. 4e9, 3.5G or 512MiB")
        number, unit = float(m.group(1)), (m.group(2) or "").lower()
    if number != number or number in (float("inf"), float("-inf")):
        raise UserError(f"memory size {value!r} must be a finite size like 4e9 or 3.5G")
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise UserError(f"memory size {value!r} must be positive")
    return size


def default_memory_target() -> int:
    """``IGNEOUS_MEMORY_TARGET`` if set, else a quarter of this machine's memory."""
    env = os.environ.get("IGNEOUS_MEMORY_TARGET")
    if env:
        return parse_memory(env)
    return max(MIN_TARGET, int(machine_memory() * MEMORY_FRACTION))


def return_freed_memory() -> None:
    """Make a long-lived worker give freed block buffers back to the system.

    glibc serves allocations above a threshold with their own mappings, but
    raises that threshold each time such a block is freed (up to 32 MB); after
    a few tasks, 4-30 MB buffers (a slab of chunks, a decoded chunk) land in
    the heap, stay there between tasks and push the worker's peak up with
    every task. A fixed threshold (and trimming) keeps a worker's peak the
    peak of its largest task. No-op where the C library is not glibc.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already uses
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 4 << 20)
    mallopt(m_trim_threshold, 16 << 20)
