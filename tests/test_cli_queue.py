"""`igneous queue ...` and the CLI's handling of bad queue values.

Effects are checked in-process through click's CliRunner; error output is
checked on real subprocesses, where a traceback would show.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from igneous.cli import main
from igneous.queues.local import LocalQueue
from igneous.tasks import Task


def tasks(n: int, prefix: str = "t") -> list[Task]:
    return [Task("touch", {"path": f"/nonexistent/{prefix}{i}"}) for i in range(n)]


def payloads(items) -> list[str]:
    return [t.to_json() for t in items]


def cli(*args, input: str | None = None, ok: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def qdir(tmp_path):
    return tmp_path / "q"


@pytest.fixture
def q(qdir):
    queue = LocalQueue(str(qdir))
    yield queue
    queue.close()


def pending_by_stage(spec) -> list[tuple[str, int]]:
    with LocalQueue(str(spec), create=False) as queue:
        return list(queue.iter_pending())


def one_line_error(proc) -> str:
    """The process failed with exactly one line on stderr and no traceback."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- status --------------------------------------------------------------------


def test_status_text_and_json(q, qdir):
    q.insert(tasks(5))
    q.delete(q.lease(1, seconds=600))
    q.lease(1, seconds=600)
    (bad,) = q.lease(1, seconds=600)
    q.fail(bad, "ValueError: bad block", max_attempts=1)
    out = cli("queue", "status", qdir).output
    assert "Pending:    2" in out
    assert "Leased:     1" in out
    assert "Completed:  1" in out
    assert "Dead:       1" in out
    assert "ValueError: bad block" in out
    status = json.loads(cli("queue", "status", "--json", qdir).output)
    assert status["queue"] == f"fq://{qdir}"
    assert (status["pending"], status["leased"], status["completed"], status["dead"]) == (
        2,
        1,
        1,
        1,
    )
    assert status["inserted"] == 5
    assert status["dead_letters"][0]["error"] == "ValueError: bad block"


def test_status_eta_window_and_wait_rate(q, qdir):
    import threading

    q.insert(tasks(6))

    def drain():  # three tasks leave the queue during the window
        import time

        time.sleep(0.2)
        q.delete(q.lease(3, seconds=600))

    t = threading.Thread(target=drain)
    t.start()
    out = cli("queue", "status", qdir, "--eta", "1").output
    t.join()
    assert "Rate:       3.0 tasks/s (over 1 s)" in out and "Pending:    3" in out
    q.delete(q.lease(3, seconds=600))
    assert "is empty" in cli("queue", "wait", qdir, "--rate", "0.1").output
    assert cli("execute", "-x", "--no-tally", qdir).exit_code == 0


def test_status_shows_stages(q, qdir):
    q.insert(tasks(2, "forge"), stage=0)
    q.insert(tasks(3, "merge"), stage=1)
    out = cli("queue", "status", qdir).output
    assert "stage 0: 2 pending, 0 leased (running)" in out
    assert "stage 1: 3 pending, 0 leased (waiting)" in out
    stages = json.loads(cli("queue", "status", "--json", qdir).output)["stages"]
    assert stages == {"0": {"pending": 2, "leased": 0, "state": "running", "step": ""},
                      "1": {"pending": 3, "leased": 0, "state": "waiting", "step": ""}}


def test_status_does_not_create_a_queue(tmp_path):
    result = cli("queue", "status", tmp_path / "nothing", ok=False)
    assert result.exit_code != 0
    assert "no queue" in result.output
    assert not (tmp_path / "nothing").exists()


# -- release / purge / wait / rezero ---------------------------------------------


def test_release(q, qdir):
    q.insert(tasks(4))
    q.lease(3, seconds=600)
    (doomed,) = q.lease(1, seconds=600)
    q.fail(doomed, "boom", max_attempts=1)
    assert "Released 3 leased tasks." in cli("queue", "release", qdir).output
    c = q.counts()
    assert (c.pending, c.leased, c.dead) == (3, 0, 1)
    out = cli("queue", "release", "--dead", qdir).output
    assert "Requeued 1 dead-lettered tasks." in out
    c = q.counts()
    assert (c.pending, c.leased, c.dead) == (4, 0, 0)
    assert sorted(p for p, _ in q.iter_pending()) == sorted(payloads(tasks(4)))


def test_purge_asks_first(q, qdir):
    q.insert(tasks(3))
    result = cli("queue", "purge", qdir, input="n\n", ok=False)
    assert result.exit_code != 0
    assert q.counts().pending == 3
    cli("queue", "purge", "-y", qdir)
    c = q.counts()
    assert (c.pending, c.leased, c.dead, c.completed) == (0, 0, 0, 0)


def test_wait(q, qdir):
    cli("queue", "wait", qdir)  # empty: returns at once
    q.insert(tasks(2))
    result = cli("queue", "wait", "--poll", 0.1, "--timeout", 0.3, qdir, ok=False)
    assert result.exit_code == 1
    assert "still has tasks" in result.output

    def worker():
        time.sleep(0.5)
        with LocalQueue(str(qdir)) as other:
            other.delete(other.lease(2, seconds=60))

    t = threading.Thread(target=worker)
    t.start()
    out = cli("queue", "wait", "--poll", 0.1, "--timeout", 20, qdir).output
    t.join()
    assert "is empty" in out
    assert q.counts().completed == 2


def test_rezero(q, qdir):
    q.insert(tasks(3))
    q.delete(q.lease(2, seconds=60))
    assert q.counts().completed == 2
    cli("queue", "rezero", qdir)
    c = q.counts()
    assert (c.completed, c.inserted, c.pending) == (0, 1, 1)


# -- cp / mv -----------------------------------------------------------------------


def test_cp_keeps_stages_after_existing_work(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    with LocalQueue(str(src)) as s:
        s.insert(tasks(2, "a"), stage=0)
        s.insert(tasks(3, "b"), stage=1)
        s.lease(1, seconds=600)  # leased tasks are copied too
    with LocalQueue(str(dest)) as d:
        d.insert(tasks(1, "old"), stage=0)
    assert "Copied 5 tasks." in cli("queue", "cp", src, dest).output
    assert pending_by_stage(dest) == (
        [(p, 0) for p in payloads(tasks(1, "old"))]
        + [(p, 1) for p in payloads(tasks(2, "a"))]
        + [(p, 2) for p in payloads(tasks(3, "b"))]
    )
    with LocalQueue(str(src)) as s:  # the source is untouched
        c = s.counts()
        assert (c.pending, c.leased) == (4, 1)


def test_mv_moves_every_stage_once(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    with LocalQueue(str(src)) as s:
        s.insert(tasks(30, "a"), stage=0)
        s.insert(tasks(5, "b"), stage=1)
    with LocalQueue(str(dest)) as d:
        d.insert(tasks(1, "old"), stage=0)
    assert "Moved 35 tasks." in cli("queue", "mv", src, dest).output
    with LocalQueue(str(src)) as s:
        assert s.is_empty()
    assert pending_by_stage(dest) == (
        [(p, 0) for p in payloads(tasks(1, "old"))]
        + [(p, 1) for p in payloads(tasks(30, "a"))]
        + [(p, 2) for p in payloads(tasks(5, "b"))]
    )


def test_mv_leaves_running_work_and_its_later_stages(tmp_path):
    """A task a worker holds stays, and so does the stage waiting behind it."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    with LocalQueue(str(src)) as s:
        s.insert(tasks(30, "a"), stage=0)
        s.insert(tasks(5, "b"), stage=1)
        (held,) = s.lease(1, seconds=600)
    assert "Moved 29 tasks." in cli("queue", "mv", src, dest).output
    left = pending_by_stage(src)
    assert sorted(left) == sorted([(held.payload, 0)] + [(p, 1) for p in payloads(tasks(5, "b"))])
    moved = pending_by_stage(dest)
    assert Counter(p for p, _ in moved + left) == Counter(payloads(tasks(30, "a") + tasks(5, "b")))


def test_cp_and_mv_through_sqs(tmp_path, sqs_queue):
    src, back = tmp_path / "src", tmp_path / "back"
    with LocalQueue(str(src)) as s:
        s.insert(tasks(23))
    assert "Copied 23 tasks." in cli("queue", "cp", src, sqs_queue).output
    assert json.loads(cli("queue", "status", "--json", sqs_queue).output)["pending"] == 23
    assert "Moved 23 tasks." in cli("queue", "mv", sqs_queue, back).output
    assert sorted(p for p, _ in pending_by_stage(back)) == sorted(payloads(tasks(23)))
    status = json.loads(cli("queue", "status", "--json", sqs_queue).output)
    assert (status["pending"], status["leased"]) == (0, 0)


def test_cp_from_sqs_is_refused_clearly(sqs_queue, tmp_path):
    from igneous.queues.sqs import SQSQueue

    SQSQueue(sqs_queue).insert(tasks(2))
    result = cli("queue", "cp", sqs_queue, tmp_path / "dest", ok=False)
    assert result.exit_code != 0
    assert "queue mv" in result.output
    c = SQSQueue(sqs_queue).counts()
    assert (c.pending, c.leased) == (2, 0)


@pytest.mark.parametrize("command", ["cp", "mv"])
def test_stages_are_not_flattened_into_sqs(tmp_path, sqs_queue, command):
    src = tmp_path / "src"
    with LocalQueue(str(src)) as s:
        s.insert(tasks(2, "forge"), stage=0)
        s.insert(tasks(3, "merge"), stage=1)
    result = cli("queue", command, src, sqs_queue, ok=False)
    assert result.exit_code != 0
    assert "several stages" in result.output
    with LocalQueue(str(src)) as s:
        c = s.counts()
        assert (c.pending, c.leased) == (5, 0)
        s.delete(s.lease(2, seconds=60))  # the first stage finishes
    assert "Moved 3 tasks." in cli("queue", "mv", src, sqs_queue).output


def test_sqs_release_and_purge(sqs_queue):
    from igneous.queues.sqs import SQSQueue

    SQSQueue(sqs_queue).insert(tasks(3))
    result = cli("queue", "release", sqs_queue, ok=False)
    assert result.exit_code != 0
    assert "visibility timeout" in result.output
    cli("queue", "purge", "-y", sqs_queue)
    assert SQSQueue(sqs_queue).is_empty()


# -- bad input: one line, non-zero exit, nothing lost ------------------------------


@pytest.mark.parametrize(
    "command", [("queue", "status"), ("execute", "-x"), ("queue", "purge", "-y")]
)
def test_unknown_scheme(igneous, command):
    line = one_line_error(igneous(*command, "foo://x"))
    assert "unknown queue scheme 'foo'" in line


@pytest.mark.parametrize("command", [("queue", "status"), ("execute", "-x"), ("queue", "release")])
def test_queue_path_is_a_file(igneous, tmp_path, command):
    path = tmp_path / "file"
    path.write_text("not a queue")
    assert "is a file" in one_line_error(igneous(*command, path))
    assert path.read_text() == "not a queue"


def test_execute_on_directory_without_queue(igneous, tmp_path):
    (tmp_path / "data.txt").write_text("x")
    line = one_line_error(igneous("execute", "-x", tmp_path))
    assert f"no queue at {tmp_path}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_execute_on_missing_sqs_queue(igneous, sqs_queue):
    for parallel in ("1", "2"):
        assert "does not exist" in one_line_error(
            igneous("-p", parallel, "execute", "-x", sqs_queue)
        )


@pytest.mark.parametrize(
    "command",
    [
        ("queue", "status", "sqs://jobs"),
        ("execute", "-x", "sqs://jobs"),
        ("-p", "2", "execute", "-x", "sqs://jobs"),
        ("queue", "purge", "-y", "sqs://jobs"),
        ("queue", "cp", "SRC", "sqs://jobs"),
        ("queue", "mv", "SRC", "sqs://jobs"),
    ],
)
def test_unreachable_sqs_endpoint(igneous, aws_env, closed_port, tmp_path, command):
    src = tmp_path / "src"
    with LocalQueue(str(src)) as s:
        s.insert(tasks(12))
    args = [str(src) if a == "SRC" else a for a in command]
    t0 = time.monotonic()
    proc = igneous(*args, env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}"}, timeout=30)
    assert time.monotonic() - t0 < 15
    line = one_line_error(proc)
    assert "jobs" in line and "Could not connect" in line
    with LocalQueue(str(src)) as s:  # a failed cp/mv loses and leases nothing
        c = s.counts()
        assert (c.pending, c.leased) == (12, 0)
        assert sorted(p for p, _ in s.iter_pending()) == sorted(payloads(tasks(12)))


def test_execute_rejects_bad_numbers(igneous, q, qdir):
    assert igneous("execute", "--max-attempts", 0, qdir).returncode != 0
    assert igneous("execute", "--lease-sec", 0, qdir).returncode != 0
    assert igneous("-p", -1, "execute", qdir).returncode != 0
