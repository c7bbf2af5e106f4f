"""PostgreSQL as a task queue: the local queue's semantics for a whole cluster.

``postgresql://USER@HOST:PORT/DB?queue=NAME`` (or ``postgres://``). Any libpq
URI works (``sslmode=...``, ``host=/run/postgresql``; a password comes best
from ``PGPASSWORD`` or ``~/.pgpass``, so it never shows in a command line).
``queue=NAME`` (default ``default``) lets many queues share one database: all
of them live in the same few ``igneous_*`` tables, keyed by name.

The same design as igneous.queues.local, moved into a server:

- a lease is one ``UPDATE ... RETURNING`` over rows picked with
  ``FOR UPDATE SKIP LOCKED``: concurrent workers skip each other's rows
  instead of waiting, and never get the same task while its lease holds;
- times are the server's clock, so workers on machines whose clocks disagree
  still agree on when a lease runs out;
- stages: only tasks of the lowest stage still present are leased;
- a task leased MAX_LEASES times without finishing is dead-lettered;
- one ``insert`` call is one transaction (COPY): a failure half-way leaves
  nothing behind.

Every database failure surfaces as a one-line :class:`igneous.errors.QueueError`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from igneous.errors import QueueError
from igneous.queues.base import (
    INSERT_BATCH,
    MAX_LEASES,
    DeadLetter,
    Lease,
    QueueCounts,
    TaskQueue,
)

Cursor = Any  # a psycopg cursor (psycopg is imported only when a queue is opened)

T = TypeVar("T")
DEFAULT_QUEUE = "default"
CONNECT_TIMEOUT = 5  # seconds, unless the spec sets connect_timeout itself
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_SCHEMA_LOCK = 0x16E0  # advisory lock key: one process creates the tables at a time
NOW = "extract(epoch from clock_timestamp())::float8"  # the server's clock, in seconds

SCHEMA = """
CREATE TABLE IF NOT EXISTS igneous_queues (
  name TEXT PRIMARY KEY,
  created_at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch from clock_timestamp())
);
CREATE TABLE IF NOT EXISTS igneous_tasks (
  id BIGSERIAL PRIMARY KEY,
  queue TEXT NOT NULL,
  payload TEXT NOT NULL,
  stage INTEGER NOT NULL DEFAULT 0,
  lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
  leases INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS igneous_tasks_ready ON igneous_tasks(queue, stage, id);
CREATE TABLE IF NOT EXISTS igneous_dead (
  queue TEXT NOT NULL,
  id BIGINT NOT NULL,
  payload TEXT NOT NULL,
  stage INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  error TEXT,
  died_at DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (queue, id)
);
CREATE TABLE IF NOT EXISTS igneous_counters (
  queue TEXT NOT NULL, name TEXT NOT NULL, value BIGINT NOT NULL,
  PRIMARY KEY (queue, name)
);
CREATE TABLE IF NOT EXISTS igneous_completions (
  queue TEXT NOT NULL, sec BIGINT NOT NULL, n BIGINT NOT NULL,
  PRIMARY KEY (queue, sec)
);
CREATE TABLE IF NOT EXISTS igneous_meta (
  queue TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (queue, key)
);
CREATE TABLE IF NOT EXISTS igneous_usage (
  queue TEXT NOT NULL, task TEXT NOT NULL, field TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL, PRIMARY KEY (queue, task, field)
);
"""

# Take up to n ready tasks of the lowest stage present. Rows another worker is
# leasing right now are skipped, not waited for.
LEASE_SQL = f"""
WITH pick AS (
  SELECT id FROM igneous_tasks
  WHERE queue = %(q)s AND lease_until <= {NOW}
    AND stage = (SELECT MIN(stage) FROM igneous_tasks WHERE queue = %(q)s)
  ORDER BY id LIMIT %(n)s
  FOR UPDATE SKIP LOCKED
)
UPDATE igneous_tasks t SET lease_until = {NOW} + %(sec)s, leases = t.leases + 1
FROM pick WHERE t.id = pick.id
RETURNING t.id, t.payload, t.leases, t.stage
"""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def parse_spec(spec: str) -> tuple[str, str, str]:
    """Split a ``postgresql://`` spec into (libpq conninfo, queue name, display URL).

    The display URL leaves out any password.
    """
    parts = urlsplit(spec)
    if parts.scheme not in ("postgresql", "postgres"):
        raise QueueError(f"not a PostgreSQL queue spec: expected postgresql://HOST/DB?queue=NAME, got {parts.scheme}://...")
    params = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in params if k == "queue"]
    name = names[-1] if names else DEFAULT_QUEUE
    if not _NAME.fullmatch(name):
        raise QueueError(
            f"bad PostgreSQL queue name {name!r}: use 1-100 letters, digits, '.', '-' or '_'"
        )
    rest = [(k, v) for k, v in params if k != "queue"]
    if not any(k == "connect_timeout" for k, _ in rest):
        rest.append(("connect_timeout", str(CONNECT_TIMEOUT)))
    conninfo = f"postgresql://{parts.netloc}{parts.path}?{urlencode(rest)}"
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        netloc[0] = netloc[0].split(":", 1)[0]
    shown = [(k, v) for k, v in params if k not in ("queue", "password")] + [("queue", name)]
    url = f"postgresql://{'@'.join(netloc)}{parts.path}?{urlencode(shown)}"
    return conninfo, name, url


class PostgresQueue(TaskQueue):
    """A durable queue named ``name`` in a PostgreSQL database."""

    supports_stages = True

    def __init__(self, spec: str, *, create: bool = True):
        try:
            import psycopg  # noqa: F401 - a dependency, imported late to keep the CLI quick
        except ImportError:
            raise QueueError(
                "postgresql:// queues need the psycopg package: pip install 'psycopg[binary]'"
            ) from None
        self._conninfo, self.name, self.url = parse_spec(spec)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0

        def setup(cur: Cursor) -> bool:
            cur.execute("SELECT to_regclass('igneous_tasks') IS NOT NULL")
            if cur.fetchone()[0]:
                cur.execute("SELECT 1 FROM igneous_queues WHERE name = %s", (self.name,))
                if cur.fetchone():
                    return True
            if not create:
                return False
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cur.execute(SCHEMA)
            cur.execute(
                "INSERT INTO igneous_queues(name) VALUES (%s) ON CONFLICT DO NOTHING", (self.name,)
            )
            return True

        if not self._tx(setup):
            self.close()
            raise QueueError(f"no queue {self.name!r} in {self.url} (create one by inserting tasks into it)")

    # -- helpers ------------------------------------------------------------
    def _connection(self) -> Any:
        import psycopg

        # a forked worker must not share its parent's socket: open its own
        if self._conn is None or self._conn.closed or self._pid != os.getpid():
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            # no server-side prepared statements: works behind PgBouncer (transaction mode)
            self._conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None)
            self._pid = os.getpid()
        return self._conn

    def _tx(self, fn: Callable[[Any], T], *, retry: bool = True, atomic: bool = True) -> T:
        """Run ``fn(cursor)`` in one transaction; database errors become one-line QueueErrors.

        A connection the server dropped (a restart, an idle timeout) is replaced
        and the transaction tried once more: at-least-once delivery makes that
        safe (a lease whose commit was lost only delays those tasks until it
        expires). Inserts are not retried: their task stream is spent.
        ``atomic=False`` where ``fn`` runs one statement (atomic by itself):
        one round trip instead of three (BEGIN, it, COMMIT), for renewals of
        short leases under load.
        """
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                try:
                    conn = self._connection()
                    with conn.transaction() if atomic else nullcontext(), conn.cursor() as cur:
                        return fn(cur)
                except psycopg.Error as e:
                    lost = self._conn is not None and self._conn.broken
                    if lost:
                        self._conn = None  # the next try reconnects
                    if not (lost and retry and attempt == 1):
                        raise QueueError(f"PostgreSQL queue {self.url}: {_one_line(e)}") from None
            raise AssertionError("unreachable")

    def _rows(self, sql: str, args: dict | tuple = ()) -> list[tuple]:
        def read(cur: Cursor) -> list[tuple]:
            cur.execute(sql, args)
            return cur.fetchall()

        return self._tx(read, atomic=False)

    def _bump(self, cur: Cursor, name: str, n: int) -> None:
        cur.execute(
            "INSERT INTO igneous_counters(queue, name, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (queue, name) DO UPDATE SET value = igneous_counters.value + excluded.value",
            (self.name, name, n),
        )

    def _bury(self, cur: Cursor, task_id: int, error: str) -> None:
        cur.execute(
            "INSERT INTO igneous_dead(queue, id, payload, stage, failures, error, died_at) "
            f"SELECT queue, id, payload, stage, failures, %s, {NOW} FROM igneous_tasks WHERE id = %s",
            (error, task_id),
        )
        cur.execute("DELETE FROM igneous_tasks WHERE id = %s", (task_id,))

    # -- interface ----------------------------------------------------------
    def insert_payloads(self, payloads: Iterable[str], *, stage: int = 0) -> int:
        def add(cur: Cursor) -> int:
            n = 0
            with cur.copy("COPY igneous_tasks(queue, payload, stage) FROM STDIN") as copy:
                for payload in payloads:
                    copy.write_row((self.name, payload, stage))
                    n += 1
            if n:
                self._bump(cur, "inserted", n)
            return n

        return self._tx(add, retry=False)

    def lease(self, n: int = 1, *, seconds: float = 600) -> list[Lease]:
        def take(cur: Cursor) -> list[tuple]:
            cur.execute(LEASE_SQL, {"q": self.name, "n": n, "sec": seconds})
            rows = cur.fetchall()
            for tid, _, leases, _ in rows:
                if leases > MAX_LEASES:
                    self._bury(cur, tid, f"leased {leases - 1} times without finishing (worker died?)")
            return sorted(r for r in rows if r[2] <= MAX_LEASES)

        return [
            Lease(handle=str(tid), payload=p, attempt=k, token=k, stage=stage)
            for tid, p, k, stage in self._tx(take)
        ]

    def renew(self, lease: Lease, *, seconds: float) -> bool:
        def extend(cur: Cursor) -> bool:
            cur.execute(
                f"UPDATE igneous_tasks SET lease_until = {NOW} + %s WHERE id = %s AND leases = %s",
                (seconds, int(lease.handle), lease.token),
            )
            return cur.rowcount == 1

        return self._tx(extend, atomic=False)

    def renew_many(self, leases: Sequence[Lease], *, seconds: float) -> list[bool]:
        if not leases:
            return []

        def extend(cur: Cursor) -> set[int]:
            # one statement: a renewer holding 64 leases must not make 64 round trips
            cur.execute(
                f"UPDATE igneous_tasks t SET lease_until = {NOW} + %s "
                "FROM unnest(%s::bigint[], %s::int[]) AS u(id, leases) "
                "WHERE t.id = u.id AND t.leases = u.leases RETURNING t.id",
                (seconds, [int(x.handle) for x in leases], [x.token for x in leases]),
            )
            return {row[0] for row in cur.fetchall()}

        ours = self._tx(extend, atomic=False)
        return [int(x.handle) in ours for x in leases]

    def delete(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return

        def done(cur: Cursor) -> None:
            # sorted ids: concurrent deletes lock rows in the same order (no deadlock)
            ids = sorted({int(x.handle) for x in leases})
            cur.execute("DELETE FROM igneous_tasks WHERE id = ANY(%s)", (ids,))
            n = cur.rowcount
            if n > 0:
                self._bump(cur, "completed", n)
                cur.execute(
                    "INSERT INTO igneous_completions(queue, sec, n) "
                    f"VALUES (%s, floor({NOW}), %s) ON CONFLICT (queue, sec) "
                    "DO UPDATE SET n = igneous_completions.n + excluded.n",
                    (self.name, n),
                )
                cur.execute(
                    f"DELETE FROM igneous_completions WHERE queue = %s AND sec < {NOW} - 600",
                    (self.name,),
                )

        self._tx(done)

    def fail(self, lease: Lease, error: str, *, max_attempts: int, retry_delay: float = 1.0) -> bool:
        def record(cur: Cursor) -> bool:
            cur.execute(
                f"UPDATE igneous_tasks SET failures = failures + 1, last_error = %s, "
                f"lease_until = {NOW} + %s WHERE id = %s AND leases = %s RETURNING failures",
                (error, retry_delay, int(lease.handle), lease.token),
            )
            row = cur.fetchone()
            if row is None:  # the lease expired and the task moved on
                return False
            if row[0] >= max_attempts:
                self._bury(cur, int(lease.handle), error)
                return True
            return False

        return self._tx(record)

    def release(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        self._tx(
            lambda cur: cur.executemany(
                "UPDATE igneous_tasks SET lease_until = 0 WHERE id = %s AND leases = %s",
                [(int(x.handle), x.token) for x in sorted(leases, key=lambda x: int(x.handle))],
            )
        )

    def release_all(self) -> int:
        def free(cur: Cursor) -> int:
            cur.execute(
                f"UPDATE igneous_tasks SET lease_until = 0 WHERE queue = %s AND lease_until > {NOW}",
                (self.name,),
            )
            return cur.rowcount

        return self._tx(free)

    def counts(self, *, detailed: bool = True) -> QueueCounts:
        def read(cur: Cursor) -> QueueCounts:
            q = {"q": self.name}
            cur.execute("SELECT name, value FROM igneous_counters WHERE queue = %(q)s", q)
            counters = dict(cur.fetchall())
            cur.execute("SELECT COUNT(*) FROM igneous_dead WHERE queue = %(q)s", q)
            dead = cur.fetchone()[0]
            cur.execute(
                f"SELECT SUM(n)::float8, {NOW} - MIN(sec) FROM igneous_completions "
                f"WHERE queue = %(q)s AND sec >= floor({NOW}) - 60",
                q,
            )
            recent, span = cur.fetchone()
            rate = recent / max(1.0, span) if recent else None
            group = ", stage" if detailed else ""
            cur.execute(
                f"SELECT COUNT(*) FILTER (WHERE lease_until <= {NOW}), "
                f"COUNT(*) FILTER (WHERE lease_until > {NOW}){group} "
                f"FROM igneous_tasks WHERE queue = %(q)s" + (" GROUP BY stage" if detailed else ""),
                q,
            )
            rows = cur.fetchall()
            stages = {r[2]: (r[0], r[1]) for r in rows} if detailed else {}
            return QueueCounts(
                pending=sum(r[0] for r in rows),
                leased=sum(r[1] for r in rows),
                completed=counters.get("completed", 0),
                dead=dead,
                inserted=counters.get("inserted", 0),
                rate=rate,
                stages=stages,
            )

        return self._tx(read)

    def purge(self) -> None:
        def wipe(cur: Cursor) -> None:
            for table in ("igneous_tasks", "igneous_dead", "igneous_counters", "igneous_completions",
                          "igneous_meta", "igneous_usage"):
                cur.execute(f"DELETE FROM {table} WHERE queue = %s", (self.name,))

        self._tx(wipe)

    def add_usage(self, usage: Mapping[str, Mapping[str, float]]) -> None:
        rows = [(self.name, task, key, float(v)) for task, row in usage.items()
                for key, v in row.items()]

        def add(cur: Cursor) -> None:
            # one order for every writer's rows: concurrent upserts cannot deadlock
            cur.executemany(
                "INSERT INTO igneous_usage(queue, task, field, value) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (queue, task, field) DO UPDATE "
                "SET value = igneous_usage.value + EXCLUDED.value", sorted(rows))

        if rows:
            self._tx(add, retry=False)

    def usage(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for task, key, value in self._rows(
                "SELECT task, field, value FROM igneous_usage WHERE queue = %s", (self.name,)):
            out.setdefault(task, {})[key] = float(value)
        return out

    supports_pipelines = True

    def insert_once(self, key: str, stages: Sequence[tuple[int, Iterable[str]]],
                    labels: dict[int, str]) -> bool:
        def add(cur: Cursor) -> bool:
            cur.execute("INSERT INTO igneous_meta(queue, key, value) VALUES (%s, %s, '1') "
                        "ON CONFLICT DO NOTHING", (self.name, key))
            if cur.rowcount == 0:
                return False
            n = 0
            with cur.copy("COPY igneous_tasks(queue, payload, stage) FROM STDIN") as copy:
                for stage, payloads in stages:
                    for payload in payloads:
                        copy.write_row((self.name, payload, stage))
                        n += 1
            for stage, label in labels.items():
                cur.execute("INSERT INTO igneous_meta(queue, key, value) VALUES (%s, %s, %s) "
                            "ON CONFLICT (queue, key) DO UPDATE SET value = excluded.value",
                            (self.name, f"stage:{stage}", label))
            if n:
                self._bump(cur, "inserted", n)
            return True

        return self._tx(add, retry=False)

    def stage_labels(self) -> dict[int, str]:
        rows = self._rows("SELECT key, value FROM igneous_meta WHERE queue = %s "
                          "AND key LIKE 'stage:%%'", (self.name,))
        return {int(k.split(":", 1)[1]): v for k, v in rows}

    def is_empty(self) -> bool:
        return not self._rows("SELECT 1 FROM igneous_tasks WHERE queue = %s LIMIT 1", (self.name,))

    def dead_letters(self, limit: int = 10) -> list[DeadLetter]:
        rows = self._rows(
            "SELECT payload, failures, error, stage FROM igneous_dead WHERE queue = %s "
            "ORDER BY died_at DESC, id DESC LIMIT %s",
            (self.name, limit),
        )
        return [DeadLetter(payload=p, failures=f, error=e or "", stage=s) for p, f, e, s in rows]

    def requeue_dead(self) -> int:
        def revive(cur: Cursor) -> int:
            cur.execute(
                "WITH gone AS (DELETE FROM igneous_dead WHERE queue = %s RETURNING id, payload, stage) "
                "INSERT INTO igneous_tasks(queue, payload, stage) "
                "SELECT %s, payload, stage FROM gone ORDER BY id",
                (self.name, self.name),
            )
            return cur.rowcount

        return self._tx(revive)

    def next_stage(self) -> int:
        return self._rows(
            "SELECT COALESCE(MAX(stage) + 1, 0) FROM igneous_tasks WHERE queue = %s", (self.name,)
        )[0][0]

    def rezero(self) -> None:
        def reset(cur: Cursor) -> None:
            cur.execute("DELETE FROM igneous_completions WHERE queue = %s", (self.name,))
            cur.execute(
                "UPDATE igneous_counters SET value = 0 WHERE queue = %s AND name = 'completed'",
                (self.name,),
            )
            cur.execute(
                "INSERT INTO igneous_counters(queue, name, value) "
                "SELECT %s, 'inserted', COUNT(*) FROM igneous_tasks WHERE queue = %s "
                "ON CONFLICT (queue, name) DO UPDATE SET value = excluded.value",
                (self.name, self.name),
            )

        self._tx(reset)

    def iter_pending(self) -> Iterable[tuple[str, int]]:
        last_stage, last_id = -(2**31), 0
        while True:
            rows = self._rows(
                "SELECT stage, id, payload FROM igneous_tasks WHERE queue = %s "
                "AND (stage, id) > (%s, %s) ORDER BY stage, id LIMIT %s",
                (self.name, last_stage, last_id, INSERT_BATCH),
            )
            if not rows:
                return
            for stage, _, payload in rows:
                yield payload, stage
            last_stage, last_id = rows[-1][0], rows[-1][1]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
