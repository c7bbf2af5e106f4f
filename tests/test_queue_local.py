"""The durable local queue (SQLite): the shared contract plus local-only behaviour."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from igneous.errors import QueueError
from igneous.queues import open_queue
from igneous.queues.local import DB_NAME, LocalQueue
from tests.queue_contract import QueueContract, lease_all, touch_tasks


@pytest.fixture
def queue_dir(tmp_path):
    return tmp_path / "queue"


class TestLocalQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, queue_dir):
        opened: list[LocalQueue] = []

        def make() -> LocalQueue:
            q = LocalQueue(str(queue_dir))
            opened.append(q)
            return q

        yield make
        for q in opened:
            q.close()


@pytest.fixture
def q(queue_dir):
    queue = LocalQueue(str(queue_dir))
    yield queue
    queue.close()


def test_open_queue_schemes(queue_dir):
    for spec in (str(queue_dir), f"fq://{queue_dir}", f"file://{queue_dir}"):
        q = open_queue(spec)
        assert isinstance(q, LocalQueue)
        assert q.url == f"fq://{queue_dir}"
        q.close()


def test_stage_barrier(q):
    q.insert(touch_tasks(2, "forge"), stage=0)
    q.insert(touch_tasks(2, "merge"), stage=1)
    assert q.next_stage() == 2
    (a,) = q.lease(1, seconds=30)
    assert "forge" in a.payload and a.stage == 0
    # stage 0 still has one pending task and one leased: nothing from stage 1
    (b,) = q.lease(5, seconds=30)
    assert "forge" in b.payload
    assert q.lease(5, seconds=30) == []  # stage 0 only leased: still blocked
    q.delete([a])
    assert q.lease(5, seconds=30) == []
    c = q.counts()
    assert c.stages == {0: (0, 1), 1: (2, 0)}
    q.delete([b])
    later = q.lease(5, seconds=30)
    assert len(later) == 2
    assert all("merge" in x.payload and x.stage == 1 for x in later)


def test_stage_barrier_holds_for_failed_retry(q):
    q.insert(touch_tasks(1, "forge"), stage=0)
    q.insert(touch_tasks(1, "merge"), stage=1)
    (a,) = q.lease(1, seconds=30)
    assert not q.fail(a, "flaky", max_attempts=3, retry_delay=1)
    assert q.lease(1, seconds=30) == []  # waiting retry of stage 0 blocks stage 1
    time.sleep(1.2)
    (b,) = q.lease(1, seconds=30)
    assert "forge" in b.payload and b.attempt == 2


def test_dead_letter_unblocks_next_stage(q):
    q.insert(touch_tasks(1, "forge"), stage=0)
    q.insert(touch_tasks(1, "merge"), stage=1)
    (a,) = q.lease(1, seconds=30)
    assert q.fail(a, "poison", max_attempts=1)
    (b,) = q.lease(1, seconds=30)
    assert "merge" in b.payload


def test_iter_pending_order(q):
    q.insert(touch_tasks(3, "b"), stage=1)
    q.insert(touch_tasks(3, "a"), stage=0)
    q.insert(touch_tasks(2, "c"), stage=1)
    got = list(q.iter_pending())
    expected = [(t.to_json(), 0) for t in touch_tasks(3, "a")] + [
        (t.to_json(), 1) for t in touch_tasks(3, "b") + touch_tasks(2, "c")
    ]
    assert got == expected


def test_iter_pending_includes_leased(q):
    q.insert(touch_tasks(2))
    q.lease(1, seconds=30)
    assert len(list(q.iter_pending())) == 2


def test_queue_path_is_a_file(tmp_path):
    path = tmp_path / "not-a-dir"
    path.write_text("hello")
    with pytest.raises(QueueError, match="is a file"):
        LocalQueue(str(path))


def test_missing_queue_without_create(tmp_path):
    with pytest.raises(QueueError, match="no queue"):
        LocalQueue(str(tmp_path / "nothing"), create=False)
    assert not (tmp_path / "nothing").exists()


def test_corrupt_database(queue_dir):
    queue_dir.mkdir()
    (queue_dir / DB_NAME).write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(QueueError, match="cannot open queue database"):
        LocalQueue(str(queue_dir))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_database(queue_dir):
    LocalQueue(str(queue_dir)).close()
    os.chmod(queue_dir / DB_NAME, 0)
    try:
        with pytest.raises(QueueError):
            LocalQueue(str(queue_dir)).counts()
    finally:
        os.chmod(queue_dir / DB_NAME, 0o644)


def test_reference_filequeue_is_refused(queue_dir):
    (queue_dir / "queue").mkdir(parents=True)
    (queue_dir / "movement").mkdir()
    with pytest.raises(QueueError, match="FileQueue"):
        LocalQueue(str(queue_dir))


def test_reopen_keeps_tasks(queue_dir):
    q = LocalQueue(str(queue_dir))
    q.insert(touch_tasks(5))
    leases = q.lease(2, seconds=600)
    q.delete(leases[:1])
    q.close()
    again = LocalQueue(str(queue_dir), create=False)
    c = again.counts()
    assert (c.pending, c.leased, c.completed, c.inserted) == (3, 1, 1, 5)
    again.close()


def test_wal_mode(q, queue_dir):
    with sqlite3.connect(queue_dir / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_stale_lease_cannot_touch_the_new_holder(q):
    q.insert(touch_tasks(1))
    (old,) = q.lease(1, seconds=0.2)
    time.sleep(0.3)
    (new,) = q.lease(1, seconds=30)
    assert not q.renew(old, seconds=30)
    assert not q.fail(old, "late failure", max_attempts=1)
    q.release([old])
    assert q.counts().leased == 1  # still held by the new lessee
    assert q.renew(new, seconds=30)
    q.delete([new])
    assert q.is_empty() and q.counts().dead == 0


def test_rezero(q):
    q.insert(touch_tasks(4))
    q.delete(q.lease(3, seconds=30))
    c = q.counts()
    assert (c.completed, c.inserted) == (3, 4)
    assert c.rate and c.rate > 0
    q.rezero()
    c = q.counts()
    assert (c.completed, c.inserted, c.rate) == (0, 1, None)
    assert c.remaining == 1


def test_release_all_returns_only_leased(q):
    q.insert(touch_tasks(4))
    q.lease(3, seconds=600)
    assert q.release_all() == 3
    assert q.release_all() == 0
    assert len(lease_all(q)) == 4
