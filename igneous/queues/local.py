"""Durable local queue: SQLite in WAL mode inside a directory.

One machine, many worker processes. Leases are rows with a ``lease_until``
time; taking them is one ``UPDATE ... RETURNING`` statement, so two workers
never get the same task while its lease holds. Completed tasks are deleted;
a per-second completion tally gives the rate shown by ``queue status``.

Stages: a task is only leased when no task of an earlier stage is pending or
leased (``stage = MIN(stage)`` over the remaining tasks).

Not for network filesystems: SQLite's locking is unreliable there (use the
PostgreSQL or SQS backend on clusters).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from typing import TypeVar

from igneous.errors import QueueError
from igneous.queues.base import (
    INSERT_BATCH,
    MAX_LEASES,
    DeadLetter,
    Lease,
    QueueCounts,
    TaskQueue,
)

T = TypeVar("T")

DB_NAME = "queue.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  payload TEXT NOT NULL,
  stage INTEGER NOT NULL DEFAULT 0,
  lease_until REAL NOT NULL DEFAULT 0,
  leases INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(stage, lease_until);
CREATE TABLE IF NOT EXISTS dead (
  id INTEGER PRIMARY KEY,
  payload TEXT NOT NULL,
  stage INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  error TEXT,
  died_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS completions (sec INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
  task TEXT NOT NULL, field TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (task, field)
);
"""


def queue_dir(spec: str) -> str:
    path = spec[len("fq://"):] if spec.startswith("fq://") else spec
    return os.path.abspath(os.path.expanduser(path))


class LocalQueue(TaskQueue):
    """A durable queue in ``<dir>/queue.sqlite``."""

    supports_stages = True

    def __init__(self, spec: str, *, create: bool = True):
        self.path = queue_dir(spec)
        self.url = f"fq://{self.path}"
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise QueueError(f"queue path {self.path} is a file; a local queue is a directory")
        db = os.path.join(self.path, DB_NAME)
        if not os.path.exists(db):
            if not create:
                raise QueueError(f"no queue at {self.path} (create one by inserting tasks into it)")
            if os.path.isdir(self.path) and _looks_like_reference_fq(self.path):
                raise QueueError(
                    f"{self.path} is a python-task-queue FileQueue, not an igneous queue; "
                    "use `igneous queue cp` after re-creating the tasks, or a new directory"
                )
            os.makedirs(self.path, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(db, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise QueueError(f"cannot open queue database {db}: {e}") from None

    # -- helpers ------------------------------------------------------------
    def _write(self, fn: Callable[[sqlite3.Cursor], T]) -> T:
        """Run ``fn(cursor)`` inside one IMMEDIATE transaction (all or nothing).

        A full disk fails the transaction as a whole, rolled back: nothing is
        lost or half-recorded, and the error says what to do."""
        with self._lock:
            cur = self._db.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(cur)
                    cur.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        cur.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                if "full" in str(e) or "I/O" in str(e):
                    raise QueueError(f"queue database {self.path}/{DB_NAME}: {e}; free space on "
                                     "its disk and run the command again (nothing was lost)") from None
                raise
            return result

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @staticmethod
    def _bump(cur: sqlite3.Cursor, name: str, n: int) -> None:
        cur.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    # -- interface ----------------------------------------------------------
    def insert_payloads(self, payloads: Iterable[str], *, stage: int = 0) -> int:
        total = 0
        it = iter(payloads)
        while True:
            batch = [(p, stage) for p in islice(it, INSERT_BATCH)]
            if not batch:
                return total

            def add(cur: sqlite3.Cursor, batch: list[tuple[str, int]] = batch) -> None:
                cur.executemany("INSERT INTO tasks(payload, stage) VALUES (?, ?)", batch)
                self._bump(cur, "inserted", len(batch))

            self._write(add)
            total += len(batch)

    def lease(self, n: int = 1, *, seconds: float = 600) -> list[Lease]:
        now = time.time()

        def take(cur: sqlite3.Cursor) -> list[tuple[int, str, int, int]]:
            rows = cur.execute(
                "UPDATE tasks SET lease_until = ?, leases = leases + 1 WHERE id IN ("
                " SELECT id FROM tasks WHERE stage = (SELECT MIN(stage) FROM tasks)"
                " AND lease_until <= ? LIMIT ?) RETURNING id, payload, leases, stage",
                (now + seconds, now, n),
            ).fetchall()
            worn = [r for r in rows if r[2] > MAX_LEASES]
            for tid, _, leases, _ in worn:
                self._bury(cur, tid, f"leased {leases - 1} times without finishing (worker died?)")
            return [r for r in rows if r[2] <= MAX_LEASES]

        rows = self._write(take)
        return [
            Lease(handle=str(tid), payload=p, attempt=n, token=n, stage=stage)
            for tid, p, n, stage in rows
        ]

    def renew(self, lease: Lease, *, seconds: float) -> bool:
        def extend(cur: sqlite3.Cursor) -> bool:
            cur.execute(
                "UPDATE tasks SET lease_until = ? WHERE id = ? AND leases = ?",
                (time.time() + seconds, int(lease.handle), lease.token),
            )
            return cur.rowcount == 1

        return self._write(extend)

    def renew_many(self, leases: Sequence[Lease], *, seconds: float) -> list[bool]:
        if not leases:
            return []

        def extend(cur: sqlite3.Cursor) -> list[bool]:
            until, ours = time.time() + seconds, []
            for x in leases:
                cur.execute("UPDATE tasks SET lease_until = ? WHERE id = ? AND leases = ?",
                            (until, int(x.handle), x.token))
                ours.append(cur.rowcount == 1)
            return ours

        return self._write(extend)

    def delete(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return

        def done(cur: sqlite3.Cursor) -> None:
            cur.executemany("DELETE FROM tasks WHERE id = ?", [(int(x.handle),) for x in leases])
            n = cur.rowcount  # executemany sums rowcounts
            if n > 0:
                self._bump(cur, "completed", n)
                sec = int(time.time())
                cur.execute(
                    "INSERT INTO completions(sec, n) VALUES (?, ?) "
                    "ON CONFLICT(sec) DO UPDATE SET n = n + excluded.n",
                    (sec, n),
                )
                cur.execute("DELETE FROM completions WHERE sec < ?", (sec - 600,))

        self._write(done)

    def _bury(self, cur: sqlite3.Cursor, task_id: int, error: str) -> None:
        cur.execute(
            "INSERT INTO dead(id, payload, stage, failures, error, died_at) "
            "SELECT id, payload, stage, failures, ?, ? FROM tasks WHERE id = ?",
            (error, time.time(), task_id),
        )
        cur.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    def fail(self, lease: Lease, error: str, *, max_attempts: int, retry_delay: float = 1.0) -> bool:
        def record(cur: sqlite3.Cursor) -> bool:
            row = cur.execute(
                "SELECT failures FROM tasks WHERE id = ? AND leases = ?",
                (int(lease.handle), lease.token),
            ).fetchone()
            if row is None:  # lease expired and the task moved on
                return False
            failures = row[0] + 1
            cur.execute(
                "UPDATE tasks SET failures = ?, last_error = ?, lease_until = ? WHERE id = ?",
                (failures, error, time.time() + retry_delay, int(lease.handle)),
            )
            if failures >= max_attempts:
                self._bury(cur, int(lease.handle), error)
                return True
            return False

        return self._write(record)

    def release(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        self._write(
            lambda cur: cur.executemany(
                "UPDATE tasks SET lease_until = 0 WHERE id = ? AND leases = ?",
                [(int(x.handle), x.token) for x in leases],
            )
        )

    def release_all(self) -> int:
        def free(cur: sqlite3.Cursor) -> int:
            cur.execute("UPDATE tasks SET lease_until = 0 WHERE lease_until > ?", (time.time(),))
            return cur.rowcount

        return self._write(free)

    def counts(self, *, detailed: bool = True) -> QueueCounts:
        now = time.time()
        counters = dict(self._read("SELECT name, value FROM counters"))
        dead = self._read("SELECT COUNT(*) FROM dead")[0][0]
        recent = self._read(
            "SELECT COALESCE(SUM(n), 0), MIN(sec) FROM completions WHERE sec >= ?", (int(now) - 60,)
        )[0]
        rate = None
        if recent[0]:
            span = max(1.0, now - recent[1])
            rate = recent[0] / span
        stages: dict[int, tuple[int, int]] = {}
        if detailed:
            for stage, pending, leased in self._read(
                "SELECT stage, SUM(lease_until <= ?), SUM(lease_until > ?) FROM tasks GROUP BY stage",
                (now, now),
            ):
                stages[stage] = (pending, leased)
            pending = sum(p for p, _ in stages.values())
            leased = sum(x for _, x in stages.values())
        else:
            leased = self._read("SELECT COUNT(*) FROM tasks WHERE lease_until > ?", (now,))[0][0]
            pending = self._read("SELECT COUNT(*) FROM tasks")[0][0] - leased
        return QueueCounts(
            pending=pending,
            leased=leased,
            completed=counters.get("completed", 0),
            dead=dead,
            inserted=counters.get("inserted", 0),
            rate=rate,
            stages=stages,
        )

    def purge(self) -> None:
        def wipe(cur: sqlite3.Cursor) -> None:
            for table in ("tasks", "dead", "counters", "completions", "meta", "usage"):
                cur.execute(f"DELETE FROM {table}")

        self._write(wipe)

    def is_empty(self) -> bool:
        return not self._read("SELECT 1 FROM tasks LIMIT 1")

    def add_usage(self, usage: Mapping[str, Mapping[str, float]]) -> None:
        rows = [(task, key, float(v)) for task, row in usage.items() for key, v in row.items()]

        def add(cur: sqlite3.Cursor) -> None:
            cur.executemany("INSERT INTO usage(task, field, value) VALUES (?, ?, ?) ON CONFLICT"
                            "(task, field) DO UPDATE SET value = value + excluded.value", rows)

        if rows:
            self._write(add)

    def usage(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for task, key, value in self._read("SELECT task, field, value FROM usage"):
            out.setdefault(task, {})[key] = value
        return out

    supports_pipelines = True

    def insert_once(self, key: str, stages: Sequence[tuple[int, Iterable[str]]],
                    labels: dict[int, str]) -> bool:
        def add(cur: sqlite3.Cursor) -> bool:
            cur.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, '1')", (key,))
            if cur.rowcount == 0:
                return False
            n = 0
            for stage, payloads in stages:
                cur.executemany("INSERT INTO tasks(payload, stage) VALUES (?, ?)",
                                ((p, stage) for p in payloads))
                n += max(cur.rowcount, 0)
            cur.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                            [(f"stage:{k}", v) for k, v in labels.items()])
            self._bump(cur, "inserted", n)
            return True

        return self._write(add)

    def stage_labels(self) -> dict[int, str]:
        rows = self._read("SELECT key, value FROM meta WHERE key LIKE 'stage:%'")
        return {int(k.split(":", 1)[1]): v for k, v in rows}

    def dead_letters(self, limit: int = 10) -> list[DeadLetter]:
        rows = self._read(
            "SELECT payload, failures, error, stage FROM dead ORDER BY died_at DESC LIMIT ?", (limit,)
        )
        return [DeadLetter(payload=p, failures=f, error=e or "", stage=s) for p, f, e, s in rows]

    def requeue_dead(self) -> int:
        def revive(cur: sqlite3.Cursor) -> int:
            cur.execute("INSERT INTO tasks(payload, stage) SELECT payload, stage FROM dead ORDER BY id")
            n = cur.rowcount
            cur.execute("DELETE FROM dead")
            return n

        return self._write(revive)

    def next_stage(self) -> int:
        return self._read("SELECT COALESCE(MAX(stage) + 1, 0) FROM tasks")[0][0]

    def rezero(self) -> None:
        def reset(cur: sqlite3.Cursor) -> None:
            cur.execute("DELETE FROM completions")
            cur.execute("UPDATE counters SET value = 0 WHERE name = 'completed'")
            remaining = cur.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            cur.execute(
                "INSERT INTO counters(name, value) VALUES ('inserted', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (remaining,),
            )

        self._write(reset)

    def iter_pending(self) -> Iterable[tuple[str, int]]:
        for (stage,) in self._read("SELECT DISTINCT stage FROM tasks ORDER BY stage"):
            last = 0
            while True:
                rows = self._read(
                    "SELECT id, payload FROM tasks WHERE stage = ? AND id > ? ORDER BY id LIMIT ?",
                    (stage, last, INSERT_BATCH),
                )
                if not rows:
                    break
                for _, payload in rows:
                    yield payload, stage
                last = rows[-1][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _looks_like_reference_fq(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "queue")) and os.path.isdir(os.path.join(path, "movement"))
