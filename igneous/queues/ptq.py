"""python-task-queue's FileQueue (``fq://DIR`` as ``TaskQueue("fq://DIR")`` lays
it out), served by our workers without importing python-task-queue.

Layout (python-task-queue's, shared with its own producers and consumers):

- ``queue/TS--UUID.json``: one task each; ``TS`` is the unix second from which
  it may be leased (0 = at once). A lease renames the file to ``now + lease``.
- ``movement/UUID``: every name the task's file has had, one per line; held
  under a POSIX ``lockf`` lock while a lease, renewal or delete moves the file.
- ``insertions``: the number of tasks inserted (text); ``completions``: one
  byte per completed task. ``ptq status`` reads exactly these, and so does
  ``igneous queue status``, so the two agree.

Ours on top, invisible to python-task-queue: ``igneous-failures/UUID`` (failed
attempts and the last error of a task still queued) and ``igneous-dead/``
(dead-lettered tasks: ``UUID.json`` + ``UUID.error`` with the reason). A file
in ``queue/`` whose name is not ``TS--UUID.json`` is moved to ``igneous-dead/``
with that reason, and the rest of the queue keeps running.

Tasks inserted here by our planners are written as python-task-queue
"queueable function" payloads (``[["igneous.tasks", NAME], [], KWARGS, -1]``),
so python-task-queue consumers (``tq.poll()`` after ``import igneous.tasks``)
run them too.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

from igneous.errors import QueueError
from igneous.queues.base import DeadLetter, Lease, QueueCounts, TaskQueue

SCAN_WINDOW = 250  # leases pick at random among this many leasable files (as ptq does)
FAILURES = "igneous-failures"
DEAD = "igneous-dead"
USAGE = "igneous-usage.json"  # what the run used (igneous.cost), summed by add_usage


def is_ptq_dir(path: str) -> bool:
    """True when ``path`` holds a python-task-queue FileQueue (a ``queue/`` folder)."""
    return os.path.isdir(os.path.join(path, "queue"))


def ptq_payload(payload: str, queue_path: str, ident: str) -> str:
    """Our ``{"task", "kwargs"}`` JSON as a python-task-queue message; other
    payloads (already ptq messages, the original's) are kept as they are."""
    try:
        obj = json.loads(payload)
    except ValueError as e:
        raise QueueError(f"not a task payload: {e}") from None
    if isinstance(obj, dict) and "payload" in obj:
        obj["id"] = ident
        return json.dumps(obj)
    if not isinstance(obj, dict) or not isinstance(obj.get("task"), str):
        raise QueueError('not a task payload: expected {"task": NAME, "kwargs": {...}}')
    body = [["igneous.tasks", obj["task"]], [], obj.get("kwargs", {}), -1]
    return json.dumps({"payload": body, "queueName": queue_path, "id": ident})


def _split(filename: str) -> tuple[int, str] | None:
    stem, dot, ext = filename.rpartition(".")
    ts, sep, ident = (stem if dot else filename).partition("--")
    if not sep or not ts.isdigit() or not ident or (dot and ext != "json"):
        return None
    return int(ts), ident


class _Locked:
    """A movement file held under an exclusive lockf lock (created if missing)."""

    def __init__(self, path: str, *, block: bool):
        self.f = open(path, "a+")
        flags = fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB)
        try:
            fcntl.lockf(self.f.fileno(), flags)
        except OSError:
            self.f.close()
            raise

    def names(self) -> list[str]:
        self.f.seek(0)
        return [x for x in self.f.read().split("\n") if x]

    def append(self, name: str) -> None:
        self.f.write(name + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()  # releases the lock

    def __enter__(self) -> _Locked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PTQFileQueue(TaskQueue):
    """A python-task-queue FileQueue directory (see the module docstring)."""

    supports_stages = False

    def __init__(self, path: str, *, create: bool = False):
        self.path = os.path.abspath(path)
        self.url = f"fq://{self.path}"
        self.queue_dir = os.path.join(self.path, "queue")
        self.movement_dir = os.path.join(self.path, "movement")
        if not os.path.isdir(self.queue_dir):
            if not create:
                raise QueueError(f"{self.path} is not a python-task-queue FileQueue (no queue/ folder)")
            os.makedirs(self.queue_dir, exist_ok=True)
        for d in (self.movement_dir, os.path.join(self.path, FAILURES), os.path.join(self.path, DEAD)):
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as e:
                raise QueueError(f"cannot use FileQueue {self.path}: {e.strerror} ({d})") from None

    # -- helpers --------------------------------------------------------------
    def _movement(self, ident: str, *, block: bool = True) -> _Locked:
        return _Locked(os.path.join(self.movement_dir, ident), block=block)

    def _current(self, lock: _Locked) -> str | None:
        for name in reversed(lock.names()):
            if os.path.exists(os.path.join(self.queue_dir, name)):
                return name
        return None

    def _move(self, ident: str, visible_at: int, *, block: bool = True) -> bool:
        """Rename the task's file to become visible at ``visible_at``."""
        with self._movement(ident, block=block) as lock:
            name = self._current(lock)
            if name is None:
                return False
            new = f"{visible_at}--{ident}.json"
            if new != name:
                os.rename(os.path.join(self.queue_dir, name), os.path.join(self.queue_dir, new))
                lock.append(new)
            return True

    def _failures(self, ident: str) -> tuple[int, str]:
        try:
            with open(os.path.join(self.path, FAILURES, ident)) as f:
                n, _, err = f.read().partition("\n")
            return int(n), err
        except (OSError, ValueError):
            return 0, ""

    def _bury(self, name: str, ident: str, error: str) -> None:
        dead = os.path.join(self.path, DEAD)
        with open(os.path.join(dead, f"{ident}.error.tmp"), "w") as f:
            f.write(error)
        os.replace(os.path.join(dead, f"{ident}.error.tmp"), os.path.join(dead, f"{ident}.error"))
        os.rename(os.path.join(self.queue_dir, name), os.path.join(dead, f"{ident}.json"))
        for p in (os.path.join(self.movement_dir, ident), os.path.join(self.path, FAILURES, ident)):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass

    def _add_count(self, filename: str, n: int) -> None:
        path = os.path.join(self.path, filename)
        with open(path, "a+") as f:
            fcntl.lockf(f.fileno(), fcntl.LOCK_EX)
            f.seek(0)
            text = f.read().strip()
            f.seek(0)
            f.truncate()
            f.write(str((int(text) if text.isdigit() else 0) + n))
            f.flush()
            os.fsync(f.fileno())

    # -- the interface ----------------------------------------------------------
    def insert_payloads(self, payloads: Iterable[str], *, stage: int = 0) -> int:
        if stage:
            raise QueueError("a python-task-queue FileQueue has no stages; run one step at a time "
                             "or use our local queue (a directory path)")
        n = 0
        for payload in payloads:
            ident = str(uuid.uuid4())
            name = f"0--{ident}.json"
            tmp = os.path.join(self.movement_dir, f".{ident}.tmp")
            with open(tmp, "w") as f:
                f.write(ptq_payload(payload, self.path, ident))
            os.replace(tmp, os.path.join(self.queue_dir, name))
            with open(os.path.join(self.movement_dir, ident), "w") as f:
                f.write(name + "\n")
            n += 1
        if n:
            self._add_count("insertions", n)
        return n

    def _scan(self, n: int, now: int) -> list[str]:
        ready: list[str] = []
        window: list[str] = []
        with os.scandir(self.queue_dir) as it:
            for entry in it:
                parts = _split(entry.name)
                if parts is None:
                    if not entry.name.startswith("."):
                        self._quarantine(entry.name)
                    continue
                if parts[0] <= now:
                    window.append(entry.name)
                    if len(window) >= SCAN_WINDOW:
                        break
        random.shuffle(window)
        ready.extend(window[: max(n, 1) * 2])
        return ready

    def _quarantine(self, name: str) -> None:
        ident = f"malformed-{uuid.uuid4()}"
        try:
            self._bury(name, ident, f"malformed FileQueue file name {name!r} (expected TS--UUID.json)")
        except FileNotFoundError:
            pass

    def lease(self, n: int = 1, *, seconds: float = 600) -> list[Lease]:
        now = int(time.time())
        until = now + max(1, int(round(seconds)))
        out: list[Lease] = []
        for name in self._scan(n, now):
            if len(out) >= n:
                break
            ts, ident = _split(name)  # type: ignore[misc]
            new = f"{until}--{ident}.json"
            try:
                with self._movement(ident, block=False) as lock:
                    try:
                        os.rename(os.path.join(self.queue_dir, name), os.path.join(self.queue_dir, new))
                    except FileNotFoundError:
                        continue  # another worker took it
                    lock.append(new)
            except OSError:
                continue  # locked by another worker right now
            try:
                with open(os.path.join(self.queue_dir, new)) as f:
                    payload = f.read()
            except FileNotFoundError:
                continue
            failures, _ = self._failures(ident)
            out.append(Lease(handle=ident, payload=payload, attempt=failures + 1, token=until))
        return out

    def renew(self, lease: Lease, *, seconds: float) -> bool:
        try:
            return self._move(lease.handle, int(time.time()) + max(1, int(round(seconds))))
        except OSError:
            return False

    def delete(self, leases: Sequence[Lease]) -> None:
        done = 0
        for lease in leases:
            with self._movement(lease.handle) as lock:
                for name in lock.names():
                    try:
                        os.remove(os.path.join(self.queue_dir, name))
                    except FileNotFoundError:
                        pass
            for p in (os.path.join(self.movement_dir, lease.handle),
                      os.path.join(self.path, FAILURES, lease.handle)):
                try:
                    os.remove(p)
                except FileNotFoundError:
                    pass
            done += 1
        if done:  # python-task-queue's tally: one byte per completed task
            with open(os.path.join(self.path, "completions"), "ab") as f:
                f.write(b"\0" * done)

    def fail(self, lease: Lease, error: str, *, max_attempts: int, retry_delay: float = 1.0) -> bool:
        failures, _ = self._failures(lease.handle)
        failures += 1
        with self._movement(lease.handle) as lock:
            name = self._current(lock)
            if name is None:
                return False
            if failures >= max_attempts:
                self._bury(name, lease.handle, error)
                return True
        with open(os.path.join(self.path, FAILURES, lease.handle), "w") as f:
            f.write(f"{failures}\n{error}")
        self._move(lease.handle, int(time.time() + retry_delay))
        return False

    def release(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            self._move(lease.handle, 0)

    def release_all(self) -> int:
        now = int(time.time())
        n = 0
        for name in os.listdir(self.queue_dir):
            parts = _split(name)
            if parts and parts[0] > now and self._move(parts[1], 0):
                n += 1
        return n

    def counts(self, *, detailed: bool = True) -> QueueCounts:
        now = int(time.time())
        pending = leased = 0
        for name in os.listdir(self.queue_dir):
            parts = _split(name)
            if parts is None:
                continue
            if parts[0] > now:
                leased += 1
            else:
                pending += 1
        try:
            completed = os.path.getsize(os.path.join(self.path, "completions"))
        except FileNotFoundError:
            completed = 0
        try:
            with open(os.path.join(self.path, "insertions")) as f:
                text = f.read().strip()
            inserted = int(text) if text else 0
        except (FileNotFoundError, ValueError):
            inserted = 0
        dead = sum(1 for x in os.listdir(os.path.join(self.path, DEAD)) if x.endswith(".json"))
        return QueueCounts(pending=pending, leased=leased, completed=completed, dead=dead,
                           inserted=inserted)

    def purge(self) -> None:
        for d in (self.queue_dir, self.movement_dir, os.path.join(self.path, FAILURES),
                  os.path.join(self.path, DEAD)):
            for name in os.listdir(d):
                try:
                    os.remove(os.path.join(d, name))
                except FileNotFoundError:
                    pass
        self.rezero()
        try:
            os.remove(os.path.join(self.path, USAGE))
        except FileNotFoundError:
            pass

    def add_usage(self, usage: Mapping[str, Mapping[str, float]]) -> None:
        """Usage lives in ``USAGE`` (JSON) beside python-task-queue's files,
        read, summed and replaced whole under an exclusive lock (its own file)."""
        if not usage:
            return
        path = os.path.join(self.path, USAGE)
        with open(path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            total = self.usage()
            for task, row in usage.items():
                mine = total.setdefault(task, {})
                for key, value in row.items():
                    mine[key] = mine.get(key, 0) + value
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as out:
                json.dump(total, out)
            os.replace(tmp, path)

    def usage(self) -> dict[str, dict[str, float]]:
        try:
            with open(os.path.join(self.path, USAGE)) as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        return json.loads(text) if text.strip() else {}

    def rezero(self) -> None:
        with open(os.path.join(self.path, "completions"), "wb"):
            pass
        with open(os.path.join(self.path, "insertions"), "w") as f:
            f.write("0")

    def is_empty(self) -> bool:
        with os.scandir(self.queue_dir) as it:
            return not any(_split(e.name) for e in it)

    def dead_letters(self, limit: int = 10) -> list[DeadLetter]:
        dead = os.path.join(self.path, DEAD)
        names = sorted((x for x in os.listdir(dead) if x.endswith(".json")),
                       key=lambda x: os.path.getmtime(os.path.join(dead, x)), reverse=True)
        out = []
        for name in names[:limit]:
            ident = name[: -len(".json")]
            with open(os.path.join(dead, name)) as f:
                payload = f.read()
            try:
                with open(os.path.join(dead, f"{ident}.error")) as f:
                    error = f.read()
            except FileNotFoundError:
                error = ""
            out.append(DeadLetter(payload=payload, failures=0, error=error))
        return out

    def requeue_dead(self) -> int:
        dead = os.path.join(self.path, DEAD)
        n = 0
        for name in os.listdir(dead):
            if not name.endswith(".json"):
                continue
            ident = name[: -len(".json")]
            if _split(f"0--{ident}.json") is None:
                continue
            fresh = f"0--{ident}.json"
            os.rename(os.path.join(dead, name), os.path.join(self.queue_dir, fresh))
            with open(os.path.join(self.movement_dir, ident), "w") as f:
                f.write(fresh + "\n")
            try:
                os.remove(os.path.join(dead, f"{ident}.error"))
            except FileNotFoundError:
                pass
            n += 1
        return n

    def iter_pending(self) -> Iterable[tuple[str, int]]:
        for name in sorted(os.listdir(self.queue_dir)):
            if _split(name) is None:
                continue
            try:
                with open(os.path.join(self.queue_dir, name)) as f:
                    yield f.read(), 0
            except FileNotFoundError:
                continue
