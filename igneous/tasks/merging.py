"""What the mesh and skeleton merges share: a memory budget for decoded
fragments, and the barrier between the two stages of a sharded merge.

A merge task works through its labels in batches of at most
``memory_budget`` bytes of decoded fragments, so its memory does not grow
with the label count.

Sharded merges (meshes, skeletons) run in two queue stages so that no task
holds more than its memory target: the first files every label's data under
the shard it hashes to, the second builds each shard from what was filed
under it. The second stage must not start before the first has finished
(a queue without stages, such as SQS, may deliver them together), so every
first-stage task leaves a marker when its output is complete and a
second-stage task refuses (and is retried later) until all markers are there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from igneous.storage import Store

# a merge task holds at most 1/MERGE_MEMORY_FACTOR of its memory target in
# decoded fragments: fusing and encoding make copies, the outputs wait for
# their write, and the interpreter and libraries take their share
MERGE_MEMORY_FACTOR = 8

# what a decoded fragment holds beyond the bytes of its arrays: numpy array
# headers and the Python objects around them. Measured (RSS growth over 30,000
# small decoded fragments, bench/merges.py's): ~510 bytes for a mesh
# fragment, ~3,600 for a CloudVolume Skeleton with radius and vertex types.
# Without it a budget of array bytes held 3x (meshes) to 10x (skeletons) more
# memory for small fragments.
MESH_FRAGMENT_OVERHEAD = 512
SKELETON_FRAGMENT_OVERHEAD = 4096


def memory_budget(memory_target: float | None) -> float:
    """Bytes of decoded fragments a merge task may hold at once."""
    from igneous.memory import default_memory_target

    return float(memory_target or default_memory_target()) / MERGE_MEMORY_FACTOR


def mark_done(cf: Store, done_dir: str, name: str) -> None:
    """Record that the first-stage task ``name`` wrote all its output."""
    cf.put(f"{done_dir}/{name}", b"")


def count_done(cf: Store, done_dir: str) -> int:
    """How many first-stage tasks are marked done."""
    return sum(1 for _ in cf.list(prefix=f"{done_dir}/"))


def require_done(cf: Store, done_dir: str, expect: int, what: str) -> None:
    """Raise (the queue retries) while fewer than ``expect`` tasks are marked done."""
    done = count_done(cf, done_dir)
    if done < expect:
        raise RuntimeError(f"only {done} of {expect} {what} tasks have finished; "
                           "the shard stage must run after them")


def shard_hex(shard: int, shard_bits: int) -> str:
    """A shard number as its file name stem (hex, zero-padded to the spec's width)."""
    width = max(1, -(-int(shard_bits) // 4))
    return format(int(shard), "x").zfill(width)
