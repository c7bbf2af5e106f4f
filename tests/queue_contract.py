"""The behaviour every queue backend promises (igneous.queues.base).

A backend's test module subclasses ``QueueContract`` and provides a
``make_queue`` fixture: a callable that opens a new handle on one fresh queue
per test (several handles on the same queue stand for several workers).
Tests a backend cannot pass are overridden in its subclass with a skip and a
reason. Waits are kept to one or two seconds: lease times are whole seconds
on SQS.
"""

from __future__ import annotations

import threading
import time

import pytest

from igneous.errors import QueueError
from igneous.tasks import Task


def touch_tasks(n: int, prefix: str = "t") -> list[Task]:
    return [Task("touch", {"path": f"/nonexistent/{prefix}{i}"}) for i in range(n)]


def in_threads(work, n: int, timeout: float = 60) -> None:
    """Run ``work(i)`` for i < n in n threads at once; fail on any thread's error."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout} s"


def lease_all(q, *, seconds: float = 30, batch: int = 10) -> list:
    """Lease until the queue hands out nothing more."""
    leases = []
    while got := q.lease(batch, seconds=seconds):
        leases.extend(got)
    return leases


class QueueContract:
    """Subclass with a ``make_queue`` fixture to run the contract on a backend."""

    @pytest.fixture
    def q(self, make_queue):
        return make_queue()

    # -- insert / lease -----------------------------------------------------
    def test_new_queue_is_empty(self, q):
        assert q.is_empty()
        c = q.counts()
        assert (c.pending, c.leased, c.dead) == (0, 0, 0)
        assert q.lease(5, seconds=30) == []
        assert q.dead_letters() == []

    def test_insert_and_lease(self, q):
        tasks = touch_tasks(3)
        assert q.insert(tasks + ['{"task":"noop","kwargs":{}}']) == 4
        leases = lease_all(q)
        assert sorted(x.payload for x in leases) == sorted(
            [t.to_json() for t in tasks] + ['{"task":"noop","kwargs":{}}']
        )
        assert all(x.attempt == 1 for x in leases)
        assert Task.from_json(leases[0].payload).name in ("touch", "noop")
        assert q.lease(5, seconds=30) == []

    def test_insert_streams_batches(self, q):
        n = q.insert(t for t in touch_tasks(25))
        assert n == 25
        payloads = [x.payload for x in lease_all(q, batch=7)]
        assert len(payloads) == 25 == len(set(payloads))

    def test_lease_respects_n(self, q):
        q.insert(touch_tasks(5))
        assert len(q.lease(2, seconds=30)) == 2
        assert len(q.lease(1, seconds=30)) == 1
        assert len(lease_all(q)) == 2

    def test_lease_expires(self, q):
        q.insert(touch_tasks(1))
        (first,) = q.lease(1, seconds=1)
        assert q.lease(1, seconds=1) == []
        time.sleep(1.5)
        (again,) = q.lease(1, seconds=30)
        assert again.payload == first.payload
        assert again.attempt == 2

    def test_renew_extends_lease(self, q):
        q.insert(touch_tasks(1))
        (lease,) = q.lease(1, seconds=1)
        assert q.renew(lease, seconds=4)
        time.sleep(1.5)
        assert q.lease(1, seconds=30) == []
        q.delete([lease])
        assert q.is_empty()

    def test_renew_many_extends_every_lease(self, make_queue):
        """One call renews a batch (more than SQS's 10 per request); a lease
        that expired and went to another worker is reported as not ours."""
        q, other = make_queue(), make_queue()
        q.insert(touch_tasks(13))
        leases = lease_all(q, seconds=1)
        assert len(leases) == 13
        time.sleep(1.5)  # every lease ran out
        (stolen,) = other.lease(1, seconds=30)
        mine = [x for x in leases if x.payload != stolen.payload]
        theirs = [x for x in leases if x.payload == stolen.payload]
        ours = q.renew_many(mine + theirs, seconds=4)
        assert ours[:12] == [True] * 12
        if not q.url.startswith("sqs://"):  # SQS: whether an old receipt still works is the service's
            assert ours[12] is False
        assert q.renew_many([], seconds=4) == []
        time.sleep(1.2)  # past the first leases, within the renewed ones
        assert other.lease(20, seconds=30) == []
        q.delete(mine)
        other.delete([stolen])
        assert q.is_empty()

    # -- finishing ------------------------------------------------------------
    def test_delete(self, q):
        q.insert(touch_tasks(3))
        leases = lease_all(q)
        q.delete(leases[:2])
        c = q.counts()
        assert (c.pending, c.leased) == (0, 1)
        assert c.completed in (None, 2)
        q.delete(leases[2:])
        q.delete([])
        assert q.is_empty()
        assert q.lease(5, seconds=1) == []

    def test_release(self, q):
        q.insert(touch_tasks(2))
        leases = lease_all(q, seconds=60)
        q.release(leases)
        again = lease_all(q)
        assert sorted(x.payload for x in again) == sorted(x.payload for x in leases)
        assert all(x.attempt == 2 for x in again)

    def test_release_all(self, make_queue):
        worker, admin = make_queue(), make_queue()
        worker.insert(touch_tasks(3))
        worker.lease(2, seconds=600)
        assert admin.release_all() == 2
        assert len(lease_all(admin)) == 3

    def test_counts(self, q):
        q.insert(touch_tasks(5))
        c = q.counts()
        assert (c.pending, c.leased, c.dead, c.remaining) == (5, 0, 0, 5)
        leases = q.lease(2, seconds=30)
        c = q.counts(detailed=False)
        assert (c.pending, c.leased) == (3, 2)
        q.delete(leases[:1])
        c = q.counts()
        assert (c.pending, c.leased, c.dead) == (3, 1, 0)
        assert c.completed in (None, 1)
        assert sum(p for p, _ in c.stages.values()) in (0, 3)

    def test_is_empty_tracks_leases(self, q):
        q.insert(touch_tasks(1))
        assert not q.is_empty()
        (lease,) = q.lease(1, seconds=30)
        assert not q.is_empty()  # leased work is not finished work
        q.delete([lease])
        assert q.is_empty()

    def test_purge(self, q):
        q.insert(touch_tasks(4))
        leases = q.lease(2, seconds=30)
        assert q.fail(leases[0], "boom", max_attempts=1)
        q.purge()
        c = q.counts()
        assert (c.pending, c.leased, c.dead) == (0, 0, 0)
        assert q.is_empty()
        assert q.dead_letters() == []
        assert q.lease(5, seconds=1) == []
        q.insert(touch_tasks(1))  # still usable after a purge
        assert len(q.lease(5, seconds=30)) == 1

    # -- failures -------------------------------------------------------------
    def test_fail_retries_then_dead_letters(self, q):
        (task,) = touch_tasks(1, "poison")
        q.insert([task])
        for attempt in (1, 2, 3):
            (lease,) = q.lease(1, seconds=30)
            assert lease.attempt == attempt
            dead = q.fail(lease, f"RuntimeError: boom {attempt}", max_attempts=3, retry_delay=0)
            assert dead == (attempt == 3)
        assert q.lease(1, seconds=30) == []
        assert q.is_empty()
        c = q.counts()
        assert (c.pending, c.leased, c.dead) == (0, 0, 1)
        (letter,) = q.dead_letters(10)
        assert letter.payload == task.to_json()
        assert letter.failures == 3
        assert letter.error == "RuntimeError: boom 3"

    def test_fail_waits_retry_delay(self, q):
        q.insert(touch_tasks(1))
        (lease,) = q.lease(1, seconds=30)
        assert not q.fail(lease, "flaky", max_attempts=3, retry_delay=1)
        assert q.lease(1, seconds=30) == []
        time.sleep(1.5)
        assert len(q.lease(1, seconds=30)) == 1

    def test_worker_deaths_dead_letter_after_max_leases(self, q):
        """A task whose workers keep dying (never fail()) is buried after MAX_LEASES."""
        from igneous.queues.base import MAX_LEASES

        (task,) = touch_tasks(1, "oom")
        q.insert([task])
        for attempt in range(1, MAX_LEASES + 1):
            (lease,) = q.lease(1, seconds=0)  # visible again at once: "the worker died"
            assert lease.attempt == attempt
        assert q.lease(1, seconds=30) == []
        c = q.counts()
        assert (c.pending, c.leased, c.dead) == (0, 0, 1)
        (letter,) = q.dead_letters()
        assert letter.payload == task.to_json()
        assert f" {MAX_LEASES} times" in letter.error

    def test_requeue_dead(self, q):
        q.insert(touch_tasks(2))
        leases = q.lease(2, seconds=30)
        for lease in leases:
            assert q.fail(lease, "bad", max_attempts=1)
        assert q.counts().dead == 2
        assert len(q.dead_letters(1)) == 1
        assert q.requeue_dead() == 2
        assert q.counts().dead == 0
        again = lease_all(q)
        assert sorted(x.payload for x in again) == sorted(x.payload for x in leases)
        assert all(x.attempt == 1 for x in again)  # a fresh attempt count
        assert q.requeue_dead() == 0

    # -- stages and concurrency ----------------------------------------------
    def test_stages_or_refusal(self, q):
        if not q.supports_stages:
            with pytest.raises(QueueError):
                q.insert(touch_tasks(1), stage=1)
            return
        q.insert(touch_tasks(1, "late"), stage=1)
        q.insert(touch_tasks(1, "early"), stage=0)
        (first,) = q.lease(5, seconds=30)
        assert "early" in first.payload

    def test_insert_once_or_refusal(self, make_queue):
        """Pipelines: groups of stages inserted with a key, at most once."""
        q = make_queue()
        if not q.supports_pipelines:
            with pytest.raises(QueueError):
                q.insert_once("k", [(0, ["x"])], {})
            return
        groups = [(3, [t.to_json() for t in touch_tasks(2, "a")]),
                  (5, [t.to_json() for t in touch_tasks(1, "b")])]
        assert q.insert_once("k", groups, {3: "forge", 5: "merge"}) is True
        assert make_queue().insert_once("k", groups, {}) is False  # any handle sees the key
        c = q.counts()
        assert c.pending == 3 and set(c.stages) == {3, 5}
        assert q.stage_labels() == {3: "forge", 5: "merge"}
        leases = q.lease(5, seconds=30)
        assert len(leases) == 2 and all("a" in x.payload for x in leases)
        q.purge()
        assert q.stage_labels() == {}
        assert q.insert_once("k", groups, {}) is True  # purge forgets pipelines too

    def test_handles_share_one_queue(self, make_queue):
        a, b = make_queue(), make_queue()
        a.insert(touch_tasks(3))
        assert b.counts().pending == 3
        (lease,) = b.lease(1, seconds=30)
        a.delete([lease])
        assert b.counts().remaining == 2

    def test_lease_never_doubles(self, make_queue):
        """Concurrent lessees never get the same task while its lease holds."""
        n_tasks, n_workers = 80, 4
        make_queue().insert(touch_tasks(n_tasks))
        handles = [make_queue() for _ in range(n_workers)]
        got: list[list[str]] = [[] for _ in range(n_workers)]
        start = threading.Barrier(n_workers)

        def work(i: int) -> None:
            # an empty receive is not proof of an empty queue on SQS (its short
            # polls sample some servers): lease until all were seen, bounded
            start.wait()
            deadline = time.monotonic() + 45
            while sum(map(len, got)) < n_tasks and time.monotonic() < deadline:
                leases = handles[i].lease(3, seconds=60)
                got[i].extend(x.payload for x in leases)
                if not leases:
                    time.sleep(0.05)

        in_threads(work, n_workers)
        everything = [p for part in got for p in part]
        assert len(everything) == n_tasks
        assert len(set(everything)) == n_tasks

    # -- what the run used (igneous.cost) ---------------------------------------
    def test_usage_sums_concurrent_adds_and_purges(self, make_queue):
        """Workers add usage concurrently through their own handles; the totals
        are the exact sums, kept across reads, and cleared by purge."""
        n_workers, n_adds = 3, 4
        handles = [make_queue() for _ in range(n_workers)]
        assert handles[0].usage() == {}

        def work(i: int) -> None:
            for k in range(n_adds):
                handles[i].add_usage({"downsample": {"tasks": 1, "reads": 10 + k, "cpu_sec": 0.5},
                                      f"w{i}": {"writes": 2}})

        in_threads(work, n_workers)
        want = {"downsample": {"tasks": n_workers * n_adds,
                               "reads": n_workers * sum(10 + k for k in range(n_adds)),
                               "cpu_sec": 0.5 * n_workers * n_adds},
                **{f"w{i}": {"writes": 2 * n_adds} for i in range(n_workers)}}
        reader = make_queue()
        assert reader.usage() == want
        assert reader.usage() == want  # reading does not change them
        reader.add_usage({"downsample": {"tasks": 1}})
        want["downsample"]["tasks"] += 1
        assert make_queue().usage() == want
        reader.purge()
        assert make_queue().usage() == {}
