"""`igneous execute`: the worker loop run as real processes against real queues."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest

from igneous.queues.local import LocalQueue
from igneous.tasks import Task


def start(*args: str) -> subprocess.Popen:
    """Start ``igneous ARGS`` in its own process group (so it can be killed whole)."""
    return subprocess.Popen(
        [sys.executable, "-m", "igneous", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def counts(qdir):
    with LocalQueue(str(qdir), create=False) as q:
        return q.counts()


def wait_until(predicate, timeout: float = 15, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def make_queue(qdir, tasks, *, stage: int = 0) -> None:
    with LocalQueue(str(qdir)) as q:
        q.insert(tasks, stage=stage)


def touch_tasks(marks, n: int) -> list[Task]:
    marks.mkdir(exist_ok=True)
    return [Task("touch", {"path": str(marks / f"{i}")}) for i in range(n)]


def missing_marks(marks, n: int) -> list[int]:
    return [i for i in range(n) if not (marks / f"{i}").exists()]


def test_sigkill_loses_nothing(tmp_path, igneous):
    """Kill whole worker process groups ten times mid-work; every task still runs."""
    qdir, marks, n = tmp_path / "q", tmp_path / "marks", 2000
    marks.mkdir()
    # tiny sleeps so the work lasts a few seconds and kills land inside batches
    make_queue(
        qdir, [Task("sleep", {"seconds": 0.005, "path": str(marks / f"{i}")}) for i in range(n)]
    )
    rng = random.Random(20240611)
    leased_after_kill = []
    for _ in range(10):
        proc = start("-p", 2, "execute", qdir, "--lease-sec", 2, "-q")
        time.sleep(rng.uniform(0.4, 1.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        leased_after_kill.append(counts(qdir).leased)
    assert any(leased_after_kill), "no kill landed while tasks were leased"

    igneous("-p", 2, "execute", "-x", qdir, "--lease-sec", 2, "-q", timeout=60, check=True)
    assert missing_marks(marks, n) == []
    c = counts(qdir)
    assert (c.pending, c.leased, c.dead) == (0, 0, 0)
    assert c.completed == n  # each task deleted exactly once, however often it ran


def test_poison_task_is_dead_lettered(tmp_path, igneous):
    qdir, marks = tmp_path / "q", tmp_path / "marks"
    tasks = touch_tasks(marks, 50)
    tasks.insert(17, Task("fail", {"message": "poison pill 17"}))
    make_queue(qdir, tasks)
    run = igneous("execute", "-x", "--max-attempts", 3, qdir, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "poison pill 17" in run.stderr
    assert missing_marks(marks, 50) == []
    status = json.loads(igneous("queue", "status", "--json", qdir, check=True).stdout)
    assert (status["pending"], status["leased"], status["dead"]) == (0, 0, 1)
    assert status["completed"] == 50
    (letter,) = status["dead_letters"]
    assert letter["failures"] == 3
    assert letter["error"] == "RuntimeError: poison pill 17"
    assert json.loads(letter["payload"])["task"] == "fail"


@pytest.mark.parametrize("parallel", [1, 2])
def test_sigterm_finishes_current_task(tmp_path, parallel):
    qdir, marks = tmp_path / "q", tmp_path / "marks"
    marks.mkdir()
    tasks = [
        Task("sleep", {"seconds": 1.5, "path": str(marks / f"{i}")}) for i in range(parallel + 2)
    ]
    make_queue(qdir, tasks)
    proc = start("-p", parallel, "execute", qdir, "--lease-sec", 30)
    assert wait_until(lambda: counts(qdir).leased == parallel), "workers never leased"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=6)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("worker did not exit after SIGTERM")
    stderr = proc.stderr.read()
    assert proc.returncode in (0, 130), stderr
    assert "Traceback" not in stderr
    c = counts(qdir)
    assert c.leased == 0  # nothing left dangling
    assert c.completed == parallel  # the tasks in hand were finished, not abandoned
    assert c.pending == 2
    assert len(list(marks.iterdir())) == parallel


def test_exit_on_empty_returns_at_once(tmp_path, igneous):
    qdir = tmp_path / "q"
    make_queue(qdir, [])
    t0 = time.monotonic()
    run = igneous("execute", "-x", qdir, timeout=10)
    assert time.monotonic() - t0 < 2.5
    assert run.returncode == 0, run.stderr


def test_idle_worker_sleeps(tmp_path):
    qdir = tmp_path / "q"
    make_queue(qdir, [])
    proc = start("execute", qdir)
    try:
        worker = psutil.Process(proc.pid)
        time.sleep(1.0)  # past start-up
        before = worker.cpu_times()
        time.sleep(3.0)
        after = worker.cpu_times()
        used = (after.user - before.user) + (after.system - before.system)
        assert used < 0.3, f"idle worker used {used:.2f} CPU-s in 3 s"
        assert proc.poll() is None  # still waiting for work
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=3) in (0, 130)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("args", [("-p", "2", "execute"), ("execute", "-p", "2")])
def test_parallel_option_placement(tmp_path, args):
    qdir, marks = tmp_path / "q", tmp_path / "marks"
    marks.mkdir()
    make_queue(
        qdir, [Task("sleep", {"seconds": 0.8, "path": str(marks / f"{i}")}) for i in range(4)]
    )
    proc = start(*args, "-x", qdir)
    # two workers show up as two leases held at once
    saw_two = wait_until(lambda: counts(qdir).leased == 2 or proc.poll() is not None, timeout=15)
    saw_two = saw_two and proc.poll() is None
    assert proc.wait(timeout=30) == 0
    assert saw_two, "never saw two tasks leased at once"
    assert len(list(marks.iterdir())) == 4


def test_num_tasks(tmp_path, igneous):
    qdir, marks = tmp_path / "q", tmp_path / "marks"
    make_queue(qdir, touch_tasks(marks, 10))
    run = igneous("execute", "-n", 3, qdir, timeout=30)  # no -x: -n alone ends it
    assert run.returncode == 0, run.stderr
    assert len(list(marks.iterdir())) == 3
    c = counts(qdir)
    assert (c.pending, c.leased, c.completed) == (7, 0, 3)


def test_min_sec_zero_runs_one_task(tmp_path, igneous):
    qdir, marks = tmp_path / "q", tmp_path / "marks"
    make_queue(qdir, touch_tasks(marks, 10))
    assert igneous("execute", "--min-sec", 0, qdir, timeout=30).returncode == 0
    assert len(list(marks.iterdir())) == 1
    c = counts(qdir)
    assert (c.pending, c.leased, c.completed) == (9, 0, 1)
    # on an empty queue, --min-sec 0 -x has nothing to do and returns
    make_queue(tmp_path / "empty", [])
    assert igneous("execute", "--min-sec", 0, "-x", tmp_path / "empty", timeout=10).returncode == 0


def test_unknown_and_malformed_tasks_dead_letter_at_once(tmp_path, igneous):
    qdir, marks = tmp_path / "q", tmp_path / "marks"
    bad = ['{"task":"no_such_task","kwargs":{}}', "this is not json", '{"kwargs":{}}']
    make_queue(qdir, touch_tasks(marks, 5) + bad)
    run = igneous("execute", "-x", "--max-attempts", 5, qdir, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert missing_marks(marks, 5) == []
    status = json.loads(igneous("queue", "status", "--json", "--dead", 10, qdir, check=True).stdout)
    assert (status["pending"], status["leased"], status["dead"]) == (0, 0, 3)
    letters = {d["payload"]: d for d in status["dead_letters"]}
    assert set(letters) == set(bad)
    assert all(d["failures"] == 1 for d in letters.values())  # no retries
    assert "unknown task 'no_such_task'" in letters[bad[0]]["error"]
    assert "malformed task JSON" in letters[bad[1]]["error"]
    assert "malformed task" in letters[bad[2]]["error"]


def test_execute_on_sqs(tmp_path, igneous, sqs_queue):
    """The worker against SQS on the emulator, configured through the environment only."""
    from igneous.queues.sqs import SQSQueue

    marks = tmp_path / "marks"
    tasks = touch_tasks(marks, 20) + [Task("fail", {"message": "sqs poison"})]
    SQSQueue(sqs_queue).insert(tasks)
    run = igneous(
        "-p", 2, "execute", "-x", "--max-attempts", 2, "--lease-sec", 5, sqs_queue, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert missing_marks(marks, 20) == []
    status = json.loads(igneous("queue", "status", "--json", sqs_queue, check=True).stdout)
    assert (status["pending"], status["leased"], status["dead"]) == (0, 0, 1)
    assert status["completed"] is None
    assert status["dead_letters"][0]["error"] == "RuntimeError: sqs poison"
    assert status["dead_letters"][0]["failures"] == 2
