"""The PostgreSQL backend against a real server (tests/pg_server.py).

The shared contract, the local queue's stage and lease-token tests (imported
from test_queue_local and run here on PostgreSQL), the worker kill test,
PostgreSQL specifics (specs, several queues in one database, atomic inserts,
dropped connections, an unreachable server) and deploy/slurm-workers.sh run
as one array task would run it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from igneous.errors import QueueError
from igneous.queues import open_queue
from igneous.tasks import Task
from tests.queue_contract import QueueContract, lease_all, touch_tasks

# stage barriers, iteration order, stale leases, rezero: run on this backend too
from tests.test_queue_local import (  # noqa: F401
    test_dead_letter_unblocks_next_stage,
    test_iter_pending_includes_leased,
    test_iter_pending_order,
    test_release_all_returns_only_leased,
    test_rezero,
    test_stage_barrier,
    test_stage_barrier_holds_for_failed_retry,
    test_stale_lease_cannot_touch_the_new_holder,
)
from tests.test_worker import missing_marks, start
from tests.test_worker import touch_tasks as touch_tasks_in


@pytest.fixture
def pg_spec(pg_server) -> str:
    """A spec naming a fresh queue in the test database."""
    return f"{pg_server}?queue=t-{uuid.uuid4().hex[:12]}"


def _opener(spec: str):
    from igneous.queues.postgres import PostgresQueue

    opened = []

    def make(**kwargs):
        q = PostgresQueue(spec, **kwargs)
        opened.append(q)
        return q

    return make, opened


@pytest.fixture
def make_pg(pg_spec):
    make, opened = _opener(pg_spec)
    yield make
    for q in opened:
        q.close()


class TestPostgresQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, make_pg):
        return make_pg


@pytest.fixture
def q(make_pg):
    return make_pg()


def test_open_queue_schemes(pg_server):
    from igneous.queues.postgres import PostgresQueue

    tail = pg_server.split("://", 1)[1]
    for scheme in ("postgresql", "postgres"):
        with open_queue(f"{scheme}://{tail}?queue=schemes") as q:
            assert isinstance(q, PostgresQueue)
            assert q.supports_stages
            assert q.url == f"postgresql://{tail}?queue=schemes"
    with open_queue(pg_server) as q:
        assert q.name == "default"


def test_url_hides_password():
    from psycopg.conninfo import conninfo_to_dict

    from igneous.queues.postgres import parse_spec

    conninfo, name, url = parse_spec("postgres://me:s3cret@db.lab:6543/work?sslmode=require&queue=mesh")
    assert name == "mesh"
    assert "s3cret" not in url and "s3cret" in conninfo
    assert url == "postgresql://me@db.lab:6543/work?sslmode=require&queue=mesh"
    assert "queue=" not in conninfo and "connect_timeout=" in conninfo
    socket, name, url = parse_spec("postgresql:///igneous?host=/run/postgresql")
    assert name == "default" and "password" not in url
    assert conninfo_to_dict(socket) == {
        "dbname": "igneous", "host": "/run/postgresql", "connect_timeout": "5"
    }


@pytest.mark.parametrize("name", ["", "has space", "semi;colon", "x" * 101])
def test_bad_queue_names(pg_server, name):
    with pytest.raises(QueueError, match="bad PostgreSQL queue name"):
        open_queue(f"{pg_server}?queue={name}")


def test_queues_share_a_database(pg_server):
    a, b = (open_queue(f"{pg_server}?queue=share-{uuid.uuid4().hex[:8]}") for _ in range(2))
    a.insert(touch_tasks(3, "a"), stage=0)
    a.insert(touch_tasks(1, "a-late"), stage=1)
    b.insert(touch_tasks(2, "b"))
    assert (a.counts().pending, b.counts().pending) == (4, 2)
    assert (a.next_stage(), b.next_stage()) == (2, 1)
    got = lease_all(b)
    assert len(got) == 2 and all('"/nonexistent/b' in x.payload for x in got)
    assert b.fail(got[0], "boom", max_attempts=1)
    a.release_all()
    a.purge()
    assert a.is_empty() and a.counts().dead == 0
    c = b.counts()
    assert (c.leased, c.dead) == (1, 1)
    a.close()
    b.close()


def test_missing_queue_without_create(pg_server, pg_spec):
    with pytest.raises(QueueError, match="no queue 't-"):
        open_queue(pg_spec, create=False)
    open_queue(pg_spec).close()  # creating it registers the name, even while empty
    with open_queue(pg_spec, create=False) as q:
        assert q.is_empty()


def test_fresh_database_created_concurrently(pg_server):
    """Many processes opening a queue in an empty database at once all succeed."""
    import psycopg

    base, db = pg_server.rsplit("/", 1)
    fresh = f"fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {fresh}")
    spec = f"{base}/{fresh}?queue=race"
    errors, barrier = [], threading.Barrier(6)

    def open_and_insert():
        try:
            barrier.wait()
            with open_queue(spec) as q:
                q.insert(touch_tasks(5))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_and_insert) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with open_queue(spec, create=False) as q:
        assert q.counts().pending == 30


def test_insert_is_atomic(q):
    def tasks_then_crash():
        yield from touch_tasks(7)
        raise RuntimeError("planner broke")

    with pytest.raises(RuntimeError, match="planner broke"):
        q.insert(tasks_then_crash())
    c = q.counts()
    assert (c.pending, c.inserted) == (0, 0)
    assert q.insert(touch_tasks(3)) == 3


def test_unreachable_server(closed_port):
    t0 = time.monotonic()
    with pytest.raises(QueueError) as err:
        open_queue(f"postgresql://me:pw@127.0.0.1:{closed_port}/db?queue=jobs")
    assert time.monotonic() - t0 < 15
    msg = str(err.value)
    assert "\n" not in msg and f"127.0.0.1:{closed_port}" in msg and "pw" not in msg


def _drop_sessions(dsn: str) -> int:
    """Terminate the server sessions of a queue handle, as a server restart would."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() AND state = 'idle'"
        ).fetchone()[0]


def test_dropped_connection_is_replaced(pg_server, q):
    q.insert(touch_tasks(2))
    assert _drop_sessions(pg_server) >= 1
    assert q.counts().pending == 2  # reconnected and retried
    (lease,) = q.lease(1, seconds=30)
    _drop_sessions(pg_server)
    q.delete([lease])
    assert q.counts().completed == 1


def test_insert_on_dropped_connection_fails_cleanly(pg_server, q):
    q.counts()
    _drop_sessions(pg_server)
    with pytest.raises(QueueError) as err:
        q.insert(touch_tasks(3))
    assert "\n" not in str(err.value)
    assert q.counts().pending == 0  # nothing half-way; the handle works again


def test_cli_unreachable_enqueues_nothing(igneous, closed_port, tmp_path):
    run = igneous("queue", "status", f"postgresql://127.0.0.1:{closed_port}/db", timeout=30)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_cli_status_and_stages(igneous, pg_spec):
    with open_queue(pg_spec) as q:
        q.insert(touch_tasks(3, "forge"), stage=0)
        q.insert(touch_tasks(2, "merge"), stage=1)
        q.lease(1, seconds=60)
    status = json.loads(igneous("queue", "status", "--json", pg_spec, check=True).stdout)
    stages = {k: (v["pending"], v["leased"]) for k, v in status["stages"].items()}
    assert stages == {"0": (2, 1), "1": (2, 0)}
    assert "queue=t-" in status["queue"]
    assert igneous("queue", "release", pg_spec).returncode == 0
    with open_queue(pg_spec) as q:
        assert q.counts().leased == 0


def test_sigkill_loses_nothing(tmp_path, igneous, pg_spec):
    """tests/test_worker.py's kill test on PostgreSQL: ten SIGKILLs, no task lost."""
    marks, n = tmp_path / "marks", 1000
    marks.mkdir()
    with open_queue(pg_spec) as q:
        q.insert(
            [Task("sleep", {"seconds": 0.02, "path": str(marks / f"{i}")}) for i in range(n)]
        )
        rng = random.Random(20240612)
        leased_after_kill = []
        for _ in range(10):
            proc = start("-p", 2, "execute", pg_spec, "--lease-sec", 2, "-q")
            time.sleep(rng.uniform(0.6, 1.2))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            leased_after_kill.append(q.counts().leased)
        assert any(leased_after_kill), "no kill landed while tasks were leased"
        assert q.counts().completed < n, "the workers finished before the kills ended"

        igneous("-p", 2, "execute", "-x", pg_spec, "--lease-sec", 2, "-q", timeout=90, check=True)
        assert missing_marks(marks, n) == []
        c = q.counts()
        assert (c.pending, c.leased, c.dead) == (0, 0, 0)
        assert c.completed == n  # each task deleted exactly once, however often it ran


def test_slurm_example_drains_the_queue(tmp_path, pg_spec):
    """deploy/slurm-workers.sh, run as one array task would run it, empties the queue."""
    script = Path(__file__).resolve().parents[1] / "deploy" / "slurm-workers.sh"
    marks = tmp_path / "marks"
    tasks = touch_tasks_in(marks, 30)
    with open_queue(pg_spec) as q:
        q.insert(tasks[:20], stage=0)
        q.insert(tasks[20:], stage=1)
    bindir = tmp_path / "bin"  # `igneous` on PATH, as an installed one would be
    bindir.mkdir()
    (bindir / "igneous").write_text(f'#!/bin/sh\nexec {sys.executable} -m igneous "$@"\n')
    (bindir / "igneous").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "IGNEOUS_QUEUE": pg_spec,
        "SLURM_CPUS_PER_TASK": "2",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "0",
    }
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "igneous worker 7_0" in run.stdout
    assert missing_marks(marks, 30) == []
    with open_queue(pg_spec) as q:
        c = q.counts()
        assert (c.pending, c.leased, c.dead, c.completed) == (0, 0, 0, 30)


def test_slurm_example_needs_a_queue(tmp_path):
    script = Path(__file__).resolve().parents[1] / "deploy" / "slurm-workers.sh"
    env = {k: v for k, v in os.environ.items() if k != "IGNEOUS_QUEUE"}
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "set IGNEOUS_QUEUE=postgresql://" in run.stderr
