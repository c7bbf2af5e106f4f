"""The one registration (igneous/capabilities.py): every name in it resolves,
task names are function names, earlier versions' task names still run, and
the laziness it exists for holds (help without numpy, workers import only
the task they run)."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.capabilities import (
    CAPABILITIES,
    PIPELINE_STEPS,
    PLANNER_MODULES,
    TASK_ALIASES,
    TASK_MODULES,
)
from igneous.errors import UnknownTaskError
from igneous.tasks import Task, lookup
from tests.volumes import make_layer

ROOT = Path(__file__).resolve().parent.parent

# the scripting names of the spec (import igneous.task_creation as tc)
SCRIPTING_NAMES = {
    "DEFAULT_MEMORY_TARGET", "TaskPlan", "accumulate_voxel_counts", "compute_rois",
    "create_ccl_equivalence_tasks", "create_ccl_face_tasks", "create_ccl_relabel_tasks",
    "create_clahe_tasks", "create_contrast_normalization_tasks", "create_deletion_tasks",
    "create_downsampling_tasks", "create_image_shard_downsample_tasks",
    "create_image_shard_transfer_tasks", "create_luminance_levels_tasks",
    "create_mesh_deletion_tasks", "create_mesh_manifest_tasks", "create_meshing_tasks",
    "create_quantize_tasks", "create_relabeling", "create_remap_tasks",
    "create_reordering_tasks", "create_sharded_multires_mesh_tasks",
    "create_sharded_skeleton_merge_tasks", "create_skeleton_deletion_tasks",
    "create_skeleton_transfer_tasks", "create_skeletonizing_tasks",
    "create_spatial_index_mesh_tasks", "create_spatial_index_skeleton_tasks",
    "create_transfer_tasks", "create_unsharded_multires_mesh_tasks",
    "create_unsharded_skeleton_merge_tasks", "create_voxel_counting_tasks",
    "create_xfer_meshes_tasks", "plan_downsample", "plan_shard_downsample",
    "plan_sharded_multires_mesh", "plan_sharded_skeleton_merge",
}


@pytest.mark.parametrize("name", sorted(TASK_MODULES))
def test_every_task_is_its_function(name):
    fn = lookup(name)
    assert fn.__name__ == name
    assert fn.__module__ == TASK_MODULES[name]
    assert Task.of(fn, {}).name == name


def test_planners_and_steps_resolve():
    assert set(tc.__all__) == SCRIPTING_NAMES
    for name, module in PLANNER_MODULES.items():
        fn = getattr(tc, name)
        assert fn.__name__ == name and fn.__module__ == module
    for cap in CAPABILITIES:
        own = {n for names in cap.planners.values() for n in names}
        for step, planner in cap.steps.items():
            assert planner in own, f"step {step} of {cap.name} runs a planner it does not declare"
    assert set(PIPELINE_STEPS) >= {"transfer", "downsample", "mesh-forge", "mesh-merge",
                                   "skeleton-forge", "skeleton-merge"}


def test_commands_resolve():
    from igneous.cli import main

    for cap in CAPABILITIES:
        for where, parent in cap.commands:
            module, attr = where.split(":")
            command = getattr(importlib.import_module(module), attr)
            group = main
            for name in parent.split():
                group = group.commands[name]
            assert group.commands[command.name] is command


def test_task_of_refuses_an_unregistered_function():
    def mesh_forge():  # same name as a task, other module
        pass

    with pytest.raises(RuntimeError, match="not a registered task"):
        Task.of(mesh_forge)
    with pytest.raises(UnknownTaskError):
        lookup("no_such_task")


def test_old_names_decode_to_the_same_functions():
    assert TASK_ALIASES == {"mesh": "mesh_forge", "pipeline-step": "pipeline_step"}
    for old, new in TASK_ALIASES.items():
        task = Task.from_json(json.dumps({"task": old, "kwargs": {"a": 1}}))
        assert task.name == new and task.kwargs == {"a": 1}
        assert lookup(old) is lookup(new)
    assert inspect.signature(lookup("pipeline-step")).parameters.keys() >= {"queue", "planner"}


def test_a_queue_filled_by_an_earlier_version_drains(tmp_path):
    """Mesh tasks queued under the old name "mesh" write exactly what the
    current tasks write."""
    from igneous.queues import open_queue
    from igneous.worker import WorkerOptions, run_local, run_worker

    data = np.zeros((40, 36, 20), np.uint64)
    data[4:20, 5:30, 2:15] = 7
    data[22:37, 3:17, 6:19] = 2**40 + 3
    paths = [make_layer(f"{tmp_path}/{n}", data, layer_type="segmentation") for n in "ab"]
    plans = [tc.create_meshing_tasks(p, 0, shape=(20, 20, 20)) for p in paths]
    run_local([plans[0]], progress=False)

    old = [t.to_json().replace('"task":"mesh_forge"', '"task":"mesh"', 1) for t in plans[1]]
    assert all('"task":"mesh"' in p for p in old)
    with open_queue(str(tmp_path / "q")) as q:
        q.insert(old)
        result = run_worker(q, WorkerOptions(exit_on_empty=True, quiet=True))
        assert result.executed == len(old) and result.failed == 0
        assert q.is_empty() and q.counts().dead == 0

    def files(path: str) -> dict[str, bytes]:
        root = Path(path.replace("file://", "")) / "mesh_mip_0_err_40"
        return {p.name: p.read_bytes() for p in root.iterdir() if p.name != "info"}

    a, b = files(paths[0]), files(paths[1])
    assert len(a) > 2 and a == b


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120, check=True)


def test_help_does_not_import_numpy():
    proc = _run_python("import sys\nfrom igneous.cli import main\nsys.argv = ['igneous', '--help']\n"
                       "try:\n    main()\nexcept SystemExit:\n    print(' '.join(sys.modules))",
                       "-X", "importtime")
    timed = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    loaded = set(proc.stdout.split())
    assert "Commands:" in proc.stdout and "igneous.cli" in timed
    assert {"igneous.cli.mesh", "igneous.cli.skeleton"} <= loaded  # every command group loaded
    assert "numpy" not in loaded and "numpy" not in timed


def test_a_worker_imports_only_the_task_it_runs(tmp_path):
    code = f"""
import sys
from igneous.queues import open_queue
from igneous.tasks import Task
from igneous.tasks.testing import touch
from igneous.worker import WorkerOptions, run_worker
q = open_queue({str(tmp_path / 'q')!r})
q.insert([Task.of(touch, {{"path": {str(tmp_path / 'mark')!r}}})])
assert run_worker(q, WorkerOptions(exit_on_empty=True, quiet=True)).executed == 1
loaded = sorted(m for m in sys.modules if m.startswith("igneous.") or m in ("numpy", "cloudvolume"))
print(" ".join(loaded))
"""
    loaded = set(_run_python(code).stdout.split())
    assert (tmp_path / "mark").exists()
    assert "igneous.tasks.testing" in loaded
    assert not loaded & {"numpy", "cloudvolume", "igneous.tasks.mesh", "igneous.task_creation",
                         "igneous.cli"}
