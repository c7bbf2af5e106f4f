"""Poison tasks and load: a task that always raises, one that exhausts its
worker's memory, one that hangs, one that kills its worker (as the OOM killer
does) -- each is dead-lettered with its cause while the rest of the queue
finishes; and a storm of workers with leases shorter than some tasks loses
nothing and runs nothing twice into the completed count (the full storm,
16 workers x 10^5 tasks with every execution audited, is
tests/test_workers_many.py::test_storm_full).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from igneous.tasks import Task
from tests.test_worker import counts, make_queue, missing_marks, touch_tasks

MEMORY_LIMIT = 1200 * 2**20  # RLIMIT_AS of the worker: python + numpy fit, 3 GiB does not


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def execute(*args, limit_memory: bool = False, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "igneous", *map(str, args)], capture_output=True, text=True,
        timeout=timeout, preexec_fn=_limit_memory if limit_memory else None,
    )


def status(qdir, dead: int = 10) -> dict:
    proc = execute("queue", "status", "--json", "--dead", dead, qdir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_poison_tasks_are_dead_lettered_with_their_cause(tmp_path):
    qdir, marks, n = tmp_path / "q", tmp_path / "marks", 100
    tasks = touch_tasks(marks, n)
    poison = {
        "fail": Task("fail", {"message": "always broken"}),
        "allocate": Task("allocate", {"nbytes": 3 * 2**30}),  # past RLIMIT_AS
        "sleep": Task("sleep", {"seconds": 3600}),  # hangs far past its lease
    }
    for i, task in enumerate(poison.values()):
        tasks.insert(20 + 30 * i, task)
    make_queue(qdir, tasks)
    run = execute("-p", 2, "execute", "-x", "--max-attempts", 2, "--lease-sec", 1,
                  "--task-timeout", 2, qdir, limit_memory=True)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert missing_marks(marks, n) == []
    s = status(qdir)
    assert (s["pending"], s["leased"], s["dead"], s["completed"]) == (0, 0, 3, n)
    causes = {json.loads(d["payload"])["task"]: d for d in s["dead_letters"]}
    assert set(causes) == set(poison)
    assert all(d["failures"] == 2 for d in causes.values())
    assert causes["fail"]["error"] == "RuntimeError: always broken"
    assert causes["allocate"]["error"].startswith("MemoryError")
    assert causes["sleep"]["error"] == "TaskTimeout: ran longer than the task timeout of 2 s"
    # each failure is one line naming the task
    lines = [x for x in run.stderr.splitlines() if "failed" in x and "igneous: task" in x]
    assert len(lines) == 6 and any(x.startswith("igneous: task sleep failed") for x in lines)


@pytest.mark.parametrize("workers", [1, 2])
def test_task_that_kills_its_worker_is_dead_lettered(tmp_path, workers):
    """A task that SIGKILLs its worker (what the OOM killer does) every time:
    the parent watching the worker records each kill as a failed attempt with
    its cause, so it is dead-lettered after --max-attempts; the tasks of the
    killed worker's batch are settled at once (leases of 600 s never run out
    here) and a new worker finishes everything else in the same run."""
    qdir, marks, n = tmp_path / "q", tmp_path / "marks", 30
    tasks = touch_tasks(marks, n)
    tasks.insert(5, Task("crash", {}))
    tasks.insert(20, Task("crash", {}))
    make_queue(qdir, tasks)
    run = execute("-p", workers, "execute", "-x", "--max-attempts", 3, "--lease-sec", 600, qdir)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert missing_marks(marks, n) == []
    s = status(qdir)
    assert (s["pending"], s["leased"], s["dead"], s["completed"]) == (0, 0, 2, n)
    for letter in s["dead_letters"]:
        assert json.loads(letter["payload"])["task"] == "crash"
        assert letter["failures"] == 3
        assert letter["error"].startswith("WorkerKilled: the worker process running this task "
                                          "was killed by SIGKILL")
    lines = [x for x in run.stderr.splitlines() if x.startswith("igneous: task crash failed")]
    assert len(lines) == 6 and sum("dead-lettered" in x for x in lines) == 2
    assert f"Executed {n} tasks; 6 failed attempts, 2 dead-lettered." in run.stderr


def test_task_that_kills_its_worker_is_dead_lettered_on_sqs(tmp_path, sqs_queue):
    """The same on SQS, where the parent's own client records the kill and
    every delivery counts as an attempt."""
    from igneous.queues import open_queue

    marks, n = tmp_path / "marks", 12
    tasks = touch_tasks(marks, n)
    tasks.insert(3, Task("crash", {}))
    with open_queue(sqs_queue) as q:
        q.insert(tasks)
    run = execute("execute", "-x", "--max-attempts", 2, "--lease-sec", 600, sqs_queue)
    assert run.returncode == 0, run.stderr
    assert missing_marks(marks, n) == []
    s = status(sqs_queue)
    assert (s["pending"], s["leased"], s["dead"]) == (0, 0, 1)
    (letter,) = s["dead_letters"]
    assert json.loads(letter["payload"])["task"] == "crash"
    assert letter["error"].startswith("WorkerKilled: the worker process running this task was "
                                      "killed by SIGKILL")


def test_killing_execute_stops_its_workers(tmp_path):
    """The watched workers die with the `igneous execute` that started them."""
    import signal
    import time

    import psutil

    qdir = tmp_path / "q"
    make_queue(qdir, [Task("sleep", {"seconds": 120})])
    proc = subprocess.Popen([sys.executable, "-m", "igneous", "-p", "2", "execute", "-q", str(qdir)])
    try:
        deadline = time.monotonic() + 60
        while counts(qdir).leased == 0:
            assert time.monotonic() < deadline, "the sleep task was never leased"
            time.sleep(0.1)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == []
    finally:
        proc.kill()


def _storm(tmp_path, spec: str, workers: int, n: int, slow_every: int, lease: float,
           timeout: float):
    """``n`` tasks, every ``slow_every``-th sleeping past the lease, run by
    ``workers`` processes: every task runs, each is completed exactly once."""
    marks = tmp_path / "marks"
    marks.mkdir()
    tasks = [Task("sleep", {"seconds": lease * 1.6 if i % slow_every == 0 else 0,
                            "path": str(marks / f"{i}")}) for i in range(n)]
    from igneous.queues import open_queue

    with open_queue(spec) as q:
        q.insert(tasks)
    run = execute("-p", workers, "execute", "-x", "-q", "--lease-sec", lease, spec,
                  timeout=timeout)
    assert run.returncode == 0, run.stderr
    assert missing_marks(marks, n) == []
    with open_queue(spec, create=False) as q:
        c = q.counts()
    assert (c.pending, c.leased, c.dead) == (0, 0, 0)
    if c.completed is not None:  # SQS keeps no completed count
        assert c.completed == n


def test_worker_storm_loses_nothing(tmp_path):
    _storm(tmp_path, str(tmp_path / "q"), workers=16, n=2000, slow_every=200, lease=1.0,
           timeout=300)
