"""SIGKILL at every stage of every multi-stage workflow, then resume: the
output tree is byte-identical to an uninterrupted run.

Each workflow is a list of steps. A queued step is planned into a durable local
queue and executed; in the killed run the planner of the first step is killed
once before it is run again, and every executing stage is SIGKILLed (workers
and their parent, the whole process group) as soon as it has finished a task,
its leases released (what lease expiry does, without the wait) and the stage
resumed. A step that runs here (no queue) is killed once mid-run and re-run.

Compared: every file under the working directory except the queue and
``*.tmp`` files (a write cut by the kill may leave its temporary file; chunks
and fragments appear only by rename, and those files are never read).

CI runs one kill per stage on small cutouts; ``-m slow`` repeats the kills
(a storm of ``STORM`` kills per stage).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.test_pipeline import tree
from tests.test_worker import counts, start
from tests.volumes import make_layer

STORM = 6


@dataclass
class Step:
    args: tuple  # CLI arguments; {seg}, {img}, {out} are filled in
    queued: bool = True  # planned into the queue (else it runs here)


WORKFLOWS: dict[str, list[Step]] = {
    "mesh": [Step(("mesh", "forge", "{seg}", "--shape", "32,32,16")),
             Step(("mesh", "merge", "{seg}"))],
    "mesh-sharded": [Step(("mesh", "forge", "{seg}", "--shape", "32,32,16", "--sharded")),
                     Step(("mesh", "merge-sharded", "{seg}"))],
    "skeleton": [Step(("skeleton", "forge", "{seg}", "--shape", "32,32,16")),
                 Step(("skeleton", "merge", "{seg}"))],
    "skeleton-sharded": [Step(("skeleton", "forge", "{seg}", "--shape", "32,32,16", "--sharded")),
                         Step(("skeleton", "merge-sharded", "{seg}"))],
    "ccl": [Step(("image", "ccl", "faces", "{seg}", "--shape", "32,32,16")),
            Step(("image", "ccl", "links", "{seg}")),
            Step(("image", "ccl", "calc-labels", "{seg}"), queued=False),
            Step(("image", "ccl", "relabel", "{seg}", "{out}"))],
    "voxels": [Step(("image", "voxels", "count", "{seg}", "--shape", "32,32,16")),
               Step(("image", "voxels", "sum", "{seg}"), queued=False)],
    "sharded-downsample": [Step(("image", "downsample", "{img}", "--sharded", "--num-mips", "2",
                                 "--memory", "256K"))],
    "sharded-xfer": [Step(("image", "xfer", "{img}", "{out}", "--sharded", "--chunk-size",
                           "16,16,8", "--memory", "256K", "--max-mips", "1"))],
    "xfer-downsample": [Step(("image", "xfer", "{img}", "{out}", "--chunk-size", "16,16,8",
                              "--shape", "32,32,16", "--skip-downsample")),
                        Step(("image", "downsample", "{out}", "--num-mips", "2"))],
    "contrast": [Step(("image", "contrast", "histogram", "{img}")),
                 Step(("image", "contrast", "equalize", "{img}", "{out}", "--shape", "32,32,8"))],
}


def _layers(root: Path) -> None:
    from igneous.sample import smooth_image, synthetic_segmentation

    root.mkdir(parents=True)
    make_layer(str(root / "seg"), synthetic_segmentation((96, 96, 32), seed=3).astype(np.uint32),
               chunk=(32, 32, 16), layer_type="segmentation", resolution=(16, 16, 40))
    make_layer(str(root / "img"), smooth_image((96, 96, 32), seed=4), chunk=(16, 16, 8))


def _args(step: Step, root: Path, queue: Path | None) -> list[str]:
    args = [a.format(seg=root / "seg", img=root / "img", out=root / "out") for a in step.args]
    return args + (["--queue", str(queue)] if queue is not None else [])


def igneous(*args, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "igneous", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"igneous {' '.join(map(str, args))}: {proc.stderr}")
    return proc


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _kill_stage(queue: Path, rng: random.Random) -> bool:
    """Execute the queue, SIGKILL everything once a task has finished; True if
    the kill landed with work still left."""
    base = counts(queue).completed
    proc = start("-p", 2, "execute", "-x", "-q", "--lease-sec", 5, queue)
    target = base + 1 + rng.randrange(2)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if counts(queue).completed >= target:
            break
        time.sleep(0.003)
    _kill(proc)
    c = counts(queue)
    igneous("queue", "release", queue)
    return c.pending + c.leased > 0


def _kill_here(args: list[str], rng: random.Random) -> None:
    """Start a command that works here (a planner, calc-labels, sum) and kill it mid-run."""
    proc = start(*args)
    time.sleep(rng.uniform(0.2, 0.8))
    _kill(proc)


def run_workflow(root: Path, steps: list[Step], *, kills: int, seed: int = 0) -> int:
    """Run ``steps`` in ``root``; with ``kills`` > 0 kill each stage that many
    times. Returns how many kills landed mid-stage."""
    rng = random.Random(seed)
    queue = root / "queue"
    landed = 0
    for i, step in enumerate(steps):
        q = queue if step.queued else None
        args = _args(step, root, q)
        if kills and (i == 0 or not step.queued):
            _kill_here(args, rng)
            if q is not None and (q / "queue.sqlite").exists():  # what it queued runs too
                igneous("-p", 2, "execute", "-x", "-q", q)
        igneous(*args)
        if q is None:
            continue
        for _ in range(kills):
            if counts(q).pending == 0:
                break
            landed += _kill_stage(q, rng)
        igneous("-p", 2, "execute", "-x", "-q", q)
        c = counts(q)
        assert (c.pending, c.leased, c.dead) == (0, 0, 0), c
    return landed


def output(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(root).items()
            if not k.startswith("queue/") and not k.endswith(".tmp") and ".tmp." not in k}


def _check(tmp_path: Path, name: str, kills: int) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _layers(whole)
    _layers(killed)
    run_workflow(whole, WORKFLOWS[name], kills=0)
    landed = run_workflow(killed, WORKFLOWS[name], kills=kills, seed=sum(name.encode()))
    expected, got = output(whole), output(killed)
    assert sorted(got) == sorted(expected)
    differ = [k for k in expected if got[k] != expected[k]]
    assert not differ, f"{len(differ)} files differ after kills, e.g. {differ[:5]}"
    assert landed >= 1, "no kill landed while the work was under way"


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_killed_workflow_resumes_identically(tmp_path, name):
    _check(tmp_path, name, kills=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_kill_storm(tmp_path, name):
    _check(tmp_path, name, kills=STORM)
