"""Big plans: memory-sized tasks and expansion tasks (petavoxel planning).

A plan with more than FANOUT_MIN tasks goes into a queue as expansion tasks
that workers turn into the real tasks piecewise. These tests shrink the
thresholds so a small layer exercises the same paths, and check the results
against numpy and against the tasks the plan itself yields.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.grid import Grid, grid_count
from igneous.queues import open_queue
from igneous.task_creation import common
from igneous.task_creation.common import GridPlan, expand, grow_step
from igneous.worker import WorkerOptions, run_worker
from tests.volumes import BIG, average, make_layer, read_mip

PETAVOXEL_INFO = {
    "type": "segmentation", "data_type": "uint64", "num_channels": 1,
    "scales": [{
        "key": "4_4_40", "resolution": [4, 4, 40], "voxel_offset": [3, 5, 7],
        "size": [100_000, 100_000, 100_000], "chunk_sizes": [[128, 128, 64]],
        "encoding": "compressed_segmentation", "compressed_segmentation_block_size": [8, 8, 8],
    }],
}


@pytest.fixture
def small_fanout(monkeypatch):
    """Expansion from 4 tasks up, 3 tasks per expansion, ranges of 2 side by side."""
    monkeypatch.setattr(common, "FANOUT_MIN", 4)
    monkeypatch.setattr(common, "FANOUT_CELLS", 3)
    monkeypatch.setattr(common, "FANOUT_WIDTH", 2)


def drain(queue_dir: str) -> None:
    result = run_worker(queue_dir, WorkerOptions(exit_on_empty=True, quiet=True))
    assert result.failed == 0


@pytest.mark.parametrize(
    "start,stop,origin,step",
    [((0, 0, 0), (64, 64, 64), (0, 0, 0), (16, 16, 16)),
     ((3, 5, 7), (101, 67, 30), (1, 1, 1), (32, 16, 8)),
     ((-9, 4, 0), (40, 5, 3), (-10, 0, 0), (7, 3, 2))],
)
def test_grid_cells_by_index_match_the_whole_walk(start, stop, origin, step):
    g = Grid(start, stop, origin, step)
    whole = [(tuple(a), tuple(b)) for a, b in g]
    assert len(whole) == len(g) == grid_count(start, stop, origin, step)
    # every cell touches [start, stop), and together they cover it exactly once
    covered = np.zeros(np.subtract(stop, start), dtype=np.int32)
    for a, b in whole:
        assert np.all(np.array(b) > start) and np.all(np.array(a) < stop)
        lo = np.maximum(a, start) - np.array(start)
        hi = np.minimum(b, stop) - np.array(start)
        covered[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] += 1
    assert np.all(covered == 1)
    for begin, end in ((0, 1), (2, 5), (len(g) - 1, len(g) + 10)):
        part = [(tuple(a), tuple(b)) for a, b in g.cells(begin, end)]
        assert part == whole[begin:end]
    assert [tuple(a) for a, _ in Grid.from_json(g.to_json())] == [a for a, _ in whole]


def payloads(tasks) -> list[str]:
    return [t.to_json() for t in tasks]


@pytest.mark.parametrize("chained", [False, True])
def test_expansions_stand_for_exactly_the_plans_tasks(tmp_path, small_fanout, chained):
    url = make_layer(str(tmp_path / "seg"), np.full((37, 29, 11), BIG + 3, np.uint64),
                     offset=(5, 3, 1), chunk=(8, 8, 4))
    plan = tc.create_voxel_counting_tasks(url, shape=(8, 8, 4))
    assert isinstance(plan, GridPlan) and len(plan) == 5 * 4 * 3
    expected = payloads(plan)
    # a worker expands each expansion; chained ones leave an expansion of the rest
    pending = list(plan.queued_form(chained=chained))
    assert all(t.name == common.EXPAND_TASK for t in pending)
    assert len(pending) == (2 if chained else 20)
    got = []
    while pending:
        task = pending.pop(0)
        if task.name == common.EXPAND_TASK:
            json.loads(task.to_json())  # a payload, as queued
            made = expand(**task.kwargs)
            assert sum(t.name != common.EXPAND_TASK for t in made) <= common.FANOUT_CELLS
            pending.extend(made)
        else:
            got.append(task.to_json())
    assert sorted(got) == sorted(expected)


def test_downsample_through_expansions_matches_numpy(tmp_path, small_fanout):
    """Odd offset: two passes, each a stage of expansions, drained by one worker."""
    rng = np.random.default_rng(7)
    data = rng.integers(0, 255, (67, 45, 9), dtype=np.uint8)
    url = make_layer(str(tmp_path / "img"), data, offset=(3, 1, 2), chunk=(8, 8, 4))
    passes = tc.plan_downsample(url, mip=0, num_mips=2)
    assert len(passes) == 2 and all(len(p) > common.FANOUT_MIN for p in passes)
    q = open_queue(str(tmp_path / "q"))
    inserted = [q.insert(p, stage=i) for i, p in enumerate(passes)]
    assert all(n < len(p) for n, p in zip(inserted, passes))  # expansions, not the tasks
    drain(str(tmp_path / "q"))
    assert q.is_empty()
    assert q.counts().completed == sum(len(p) + _expansions_run(p) for p in passes)
    prev, prev_off = data, np.array([3, 1, 2])
    for mip in (1, 2):  # each pass averages the mip the one before it wrote
        got, off = read_mip(url, mip)
        want, want_off = average(prev, prev_off, (2, 2, 1), 1)
        np.testing.assert_array_equal(off, want_off)
        np.testing.assert_array_equal(got, want)
        prev, prev_off = got, off


def _expansions_run(plan: GridPlan) -> int:
    """Expansion tasks a chained plan runs: each range, FANOUT_CELLS tasks at a time."""
    n, size = len(plan), max(common.FANOUT_CELLS, -(-len(plan) // common.FANOUT_WIDTH))
    return sum(-(-min(size, n - b) // common.FANOUT_CELLS) for b in range(0, n, size))


def test_expansion_run_twice_inserts_its_tasks_once(tmp_path, small_fanout):
    """A worker killed after inserting but before deleting its expansion task:
    the redelivered expansion must not insert the same tasks again."""
    from igneous.worker import _expand

    url = make_layer(str(tmp_path / "seg"), np.zeros((40, 40, 8), np.uint64), chunk=(8, 8, 4))
    plan = tc.create_voxel_counting_tasks(url, shape=(8, 8, 4))
    q = open_queue(str(tmp_path / "q"))
    q.insert(plan)
    first = q.lease(1, seconds=60)[0]
    from igneous.tasks import Task

    expansion = Task.from_json(first.payload)
    _expand(q, first, expansion)
    after_once = q.counts().pending
    _expand(q, first, expansion)  # redelivered
    assert q.counts().pending == after_once


def test_foreign_expansion_is_dead_lettered_not_imported(tmp_path):
    q = open_queue(str(tmp_path / "q"))
    plan = {"cell": "os:system", "grid": [[0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]],
            "shared": {}, "params": {}, "id": "x"}
    q.insert([json.dumps({"task": common.EXPAND_TASK,
                          "kwargs": {"plan": plan, "begin": 0, "end": 1}})])
    result = run_worker(str(tmp_path / "q"), WorkerOptions(exit_on_empty=True, quiet=True))
    assert result.dead == 1
    (dead,) = q.dead_letters()
    assert "not an igneous planner" in dead.error
    with pytest.raises(UserError):
        expand(plan, 0, 1)


def test_grow_step_fills_memory_keeps_alignment_and_small_plans():
    step = np.array([256, 256, 64])

    def need(s):
        return float(np.prod(s)) * 2.0  # bytes per voxel

    lo, hi = np.zeros(3, np.int64), np.array([100_000, 100_000, 100_000])
    grown = grow_step(step, need, 4e9, start=lo, stop=hi, origin=lo)
    assert np.all(grown % step == 0)
    assert need(grown) <= 4e9 and np.prod(grown) <= common.GROW_MAX_VOXELS
    assert np.prod(grown) * 2 > common.GROW_MAX_VOXELS or need(grown) * 2 > 4e9
    # a small volume keeps at least GROW_MIN_TASKS tasks (or its original step)
    small = np.array([1024, 1024, 256])
    kept = grow_step(step, need, 4e9, start=lo, stop=small, origin=lo)
    assert grid_count(lo, small, lo, kept) >= common.GROW_MIN_TASKS or np.all(kept == step)


@pytest.mark.parametrize("planner", ["downsample", "xfer", "mesh", "skeleton", "voxels", "ccl"])
def test_petavoxel_plans_go_in_as_few_payloads(tmp_path, planner):
    """A 100,000^3 layer (info file only): each planner's queue holds a few
    hundred expansion payloads, and its tasks respect the memory target."""
    src = tmp_path / "pv"
    src.mkdir()
    (src / "info").write_text(json.dumps(PETAVOXEL_INFO))
    url = f"file://{src}"
    memory = 4e9
    if planner == "downsample":
        plan = tc.create_downsampling_tasks(url, mip=0, num_mips=1, memory_target=memory)
    elif planner == "xfer":
        plan = tc.create_transfer_tasks(url, f"file://{tmp_path / 'dest'}", memory_target=memory,
                                        chunk_size=(128, 128, 64))
    elif planner == "mesh":
        plan = tc.create_meshing_tasks(url, memory_target=memory)
    elif planner == "skeleton":
        plan = tc.create_skeletonizing_tasks(url, memory_target=memory)
    elif planner == "voxels":
        plan = tc.create_voxel_counting_tasks(url, memory_target=memory)
    else:
        plan = tc.create_ccl_face_tasks(url, memory_target=memory)
    assert len(plan) > 100_000
    q = open_queue(str(tmp_path / "q"))
    inserted = q.insert(plan)
    assert inserted <= common.FANOUT_WIDTH
    # unchained (SQS): at most FANOUT_FLAT messages, each covering its range whole
    flat = list(plan.expansions(chained=False))
    assert len(flat) <= common.FANOUT_FLAT
    assert all(t.kwargs["end"] - t.kwargs["begin"] <= t.kwargs["cells"] for t in flat)
    assert flat[-1].kwargs["end"] == len(plan)
    # the first expansion yields real tasks of the plan
    from igneous.tasks import Task

    lease = q.lease(1, seconds=60)[0]
    made = expand(**Task.from_json(lease.payload).kwargs)
    real = [t for t in made if t.name != common.EXPAND_TASK]
    assert len(real) == common.FANOUT_CELLS
    first = next(iter(plan))
    assert real[0] == first
    if planner in ("downsample", "xfer"):
        shape = np.array(first.kwargs["shape"])
        assert np.prod(shape) <= common.GROW_MAX_VOXELS
        assert np.all(shape % np.array([128, 128, 64]) == 0)
        # grown from the smallest aligned task (256x256x64 at mip 0) to fill the
        # memory target: uint64, a block and its mip (x 1.25), x2 decode overhead
        voxels = float(np.prod(shape))
        assert voxels * 8 * (1.25 if planner == "downsample" else 1) * 2 <= memory
        assert voxels >= 16 * 256 * 256 * 64


@pytest.fixture(params=["postgresql", "sqs"])
def remote_queue(request):
    """A fresh PostgreSQL or SQS (moto) queue spec."""
    if request.param == "postgresql":
        dsn = request.getfixturevalue("pg_server")
        return f"{dsn}?queue=fanout-{uuid.uuid4().hex[:8]}"
    return request.getfixturevalue("sqs_queue")


def test_big_plan_on_postgres_and_sqs(tmp_path, remote_queue, monkeypatch):
    """The same machinery on the other backends (smaller thresholds: moto's
    SQS slows down as a queue grows): few payloads, and a worker's expansion
    puts the plan's real tasks into that queue."""
    from igneous.tasks import Task
    from igneous.worker import _expand

    monkeypatch.setattr(common, "FANOUT_MIN", 1000)
    monkeypatch.setattr(common, "FANOUT_CELLS", 100)
    src = tmp_path / "big"
    src.mkdir()
    info = json.loads(json.dumps(PETAVOXEL_INFO))
    info["scales"][0]["size"] = [10_000, 10_000, 10_000]
    (src / "info").write_text(json.dumps(info))
    plan = tc.create_downsampling_tasks(f"file://{src}", mip=0, num_mips=1, memory_target=4e9)
    assert len(plan) > common.FANOUT_MIN
    q = open_queue(remote_queue)
    try:
        inserted = q.insert(plan)
        chained = q.supports_pipelines
        assert inserted == (common.FANOUT_WIDTH if chained else -(-len(plan) // common.FANOUT_CELLS))
        lease = q.lease(1, seconds=120)[0]
        expansion = Task.from_json(lease.payload)
        assert expansion.name == common.EXPAND_TASK
        _expand(q, lease, expansion)
        q.delete([lease])
        begin = expansion.kwargs["begin"]
        want = {t.to_json() for t in plan.tasks(begin, begin + common.FANOUT_CELLS)}
        got = set()
        for _ in range(200):
            leases = q.lease(10, seconds=120)
            if not leases:
                break
            got |= {x.payload for x in leases if Task.from_json(x.payload).name != "expand"}
        assert got == want
    finally:
        q.purge()
        q.close()
