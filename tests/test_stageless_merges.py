"""Sharded mesh and skeleton merges where the queue has no stages.

The sharded merges run as two stages (scatter or fuse, then one task per
shard). SQS has no stages: there the CLI queues the shard tasks alone and
each does the first stage's work for its own shard; python-task-queue's
queues, fed the chained plans of the scripting API, may deliver a shard task
before the first stage is done, and it does the same. Either way every file
a reader sees is byte-identical to the two-stage run of a local queue.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from igneous.sample import synthetic_segmentation
from tests.volumes import BIG, make_layer

RES = (8, 8, 40)
OFFSET = (3, 5, 1)
MESH = [("mesh", "forge", "{seg}", "--shape", "24,24,12", "--sharded"),
        ("mesh", "merge-sharded", "{seg}", "--max-labels-per-shard", "3", "--nlod", "1")]
SKELETON = [("skeleton", "forge", "{seg}", "--shape", "24,24,12", "--sharded",
             "--dust-threshold", "20"),
            ("skeleton", "merge-sharded", "{seg}", "--shard-bits", "2", "--minishard-bits", "1",
             "--tick-threshold", "50")]
SCRATCH = ("scatter/", ".frags/")  # a merge's working files, not what readers see


def segmentation() -> np.ndarray:
    labels = synthetic_segmentation((48, 40, 24), seed=3)
    labels[labels > 0] += np.uint64(BIG)  # ids above 2^53
    return labels


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stageless")
    data = segmentation()
    assert len(np.unique(data)) > 12
    make_layer(str(root / "seg"), data, offset=OFFSET, resolution=RES, chunk=(24, 24, 12))
    return root / "seg"


def cli(*args: str) -> str:
    from click.testing import CliRunner

    from igneous.cli import main

    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, f"igneous {' '.join(args)}: {result.output}"
    return result.output


def outputs(layer: Path) -> dict[str, bytes]:
    """What a reader sees: every file but the merge's scratch and the queue."""
    return {str(p.relative_to(layer)): p.read_bytes() for p in sorted(layer.rglob("*"))
            if p.is_file() and not any(s in str(p.relative_to(layer)) for s in SCRATCH)}


def run(steps: list[tuple[str, ...]], layer: Path, queue: str) -> str:
    said = ""
    for step in steps:
        said += cli(*[a.format(seg=f"file://{layer}") for a in step], "--queue", queue)
        cli("execute", "-x", "-q", queue)
    return said


@pytest.mark.parametrize("steps", [MESH, SKELETON], ids=["mesh", "skeleton"])
def test_sqs_runs_sharded_merges_in_one_stage(tmp_path, source, sqs_queue, steps):
    staged, single = tmp_path / "staged", tmp_path / "single"
    shutil.copytree(source, staged)
    shutil.copytree(source, single)
    run(steps, staged, str(tmp_path / "q"))
    said = run(steps, single, sqs_queue)
    assert "this queue has no stages" in said
    want, got = outputs(staged), outputs(single)
    shards = [k for k in want if k.endswith(".shard")]
    assert len(shards) >= 2, sorted(want)
    assert got.keys() == want.keys()
    assert [k for k in want if got[k] != want[k]] == []


def _shards_first(plan) -> None:
    """Run a chained plan's shard tasks before the first stage's, as a queue
    without stage order may."""
    tasks = list(plan)
    later = [t for t in tasks if t.name in ("mesh_multires", "skeleton_shard")]
    for task in later + [t for t in tasks if t not in later]:
        task()


@pytest.mark.parametrize("kind", ["mesh", "skeleton"])
def test_chained_plan_survives_shard_tasks_first(tmp_path, source, kind):
    import igneous.task_creation as tc
    from igneous.worker import run_local

    staged, early = tmp_path / "staged", tmp_path / "early"
    shutil.copytree(source, staged)
    shutil.copytree(source, early)
    for layer in (staged, early):
        path = f"file://{layer}"
        if kind == "mesh":
            run_local([tc.create_meshing_tasks(path, 0, shape=(24, 24, 12), sharded=True)],
                      progress=False)
            plan = tc.create_sharded_multires_mesh_tasks(path, max_labels_per_shard=3, num_lod=1)
        else:
            run_local([tc.create_skeletonizing_tasks(path, 0, shape=(24, 24, 12), sharded=True,
                                                     dust_threshold=20)], progress=False)
            plan = tc.create_sharded_skeleton_merge_tasks(path, shard_bits=2, minishard_bits=1,
                                                          tick_threshold=50)
        if layer == staged:
            for task in plan:
                task()
        else:
            _shards_first(plan)
    want, got = outputs(staged), outputs(early)
    assert sum(k.endswith(".shard") for k in want) >= 2
    assert got.keys() == want.keys()
    assert [k for k in want if got[k] != want[k]] == []
