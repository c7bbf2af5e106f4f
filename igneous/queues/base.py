"""The one small interface every queue backend implements.

A backend stores task payloads (opaque strings: queues never decode them) and
hands them out under leases: a leased task is invisible to other workers until
its lease expires, it is deleted (done), failed (retried or dead-lettered) or
released. Delivery is at-least-once, so tasks must be idempotent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from igneous.errors import QueueError

# A task leased this many times without finishing (its worker keeps dying,
# e.g. out of memory) is dead-lettered even though it never raised.
MAX_LEASES = 20
# Payloads per insert statement (and per page when listing).
INSERT_BATCH = 5000


class Payload(Protocol):
    """Anything that serializes itself to a payload string (igneous.tasks.Task does)."""

    def to_json(self) -> str: ...


@dataclass(frozen=True)
class Lease:
    """A task handed to one worker for a while."""

    handle: str  # backend-specific: row id, SQS receipt handle, ...
    payload: str
    attempt: int  # 1 on first delivery
    token: int = 0  # guards renew/fail against a lease that expired and moved on
    stage: int = 0


@dataclass(frozen=True)
class DeadLetter:
    payload: str
    failures: int
    error: str
    stage: int = 0


@dataclass
class QueueCounts:
    pending: int
    leased: int
    completed: int | None  # None where the backend cannot know (SQS)
    dead: int
    inserted: int | None = None
    rate: float | None = None  # completions per second over the last minute
    stages: dict[int, tuple[int, int]] = field(default_factory=dict)  # stage -> (pending, leased)

    @property
    def remaining(self) -> int:
        return self.pending + self.leased


def payloads_of(tasks: Iterable[Payload | str], *, chained: bool = False) -> Iterable[str]:
    """The payload strings of ``tasks`` (strings pass through untouched).

    A big grid plan (igneous.task_creation.common.GridPlan) offers a
    ``queued_form``: expansion tasks that workers turn into its real tasks;
    ``chained`` where the queue inserts under a key once (``insert_once``),
    so an expansion may leave the rest of its range to a successor."""
    queued_form = getattr(tasks, "queued_form", None)
    for t in queued_form(chained=chained) if queued_form is not None else tasks:
        yield t if isinstance(t, str) else t.to_json()


class TaskQueue(ABC):
    """Where tasks wait. See the module docstring for the semantics."""

    url: str
    supports_stages: bool = False

    def insert(self, tasks: Iterable[Payload | str], *, stage: int = 0) -> int:
        """Add tasks (streamed, any number); return how many were added."""
        return self.insert_payloads(payloads_of(tasks, chained=self.supports_pipelines),
                                    stage=stage)

    @abstractmethod
    def insert_payloads(self, payloads: Iterable[str], *, stage: int = 0) -> int:
        """Add payload strings (streamed, any number); return how many were added."""

    @abstractmethod
    def lease(self, n: int = 1, *, seconds: float = 600) -> list[Lease]:
        """Take up to ``n`` ready tasks of the earliest unfinished stage."""

    @abstractmethod
    def renew(self, lease: Lease, *, seconds: float) -> bool:
        """Extend a lease; False if it is no longer ours."""

    def renew_many(self, leases: Sequence[Lease], *, seconds: float) -> list[bool]:
        """Extend many leases at once (one round trip where the backend can:
        a worker's renewer holding a batch of 64 must renew them all well
        within a short lease); for each, False if it is no longer ours."""
        return [self.renew(x, seconds=seconds) for x in leases]

    @abstractmethod
    def delete(self, leases: Sequence[Lease]) -> None:
        """Mark tasks done."""

    @abstractmethod
    def fail(self, lease: Lease, error: str, *, max_attempts: int, retry_delay: float = 1.0) -> bool:
        """Record a failed attempt; return True when the task was dead-lettered."""

    @abstractmethod
    def release(self, leases: Sequence[Lease]) -> None:
        """Give leased tasks back unchanged (a worker shutting down)."""

    @abstractmethod
    def release_all(self) -> int:
        """Make every leased task available again; return how many."""

    @abstractmethod
    def counts(self, *, detailed: bool = True) -> QueueCounts:
        """Pending, leased, completed, dead (per stage when ``detailed``)."""

    @abstractmethod
    def purge(self) -> None:
        """Remove every task, dead letter and counter."""

    @abstractmethod
    def is_empty(self) -> bool:
        """True when nothing is pending or leased."""

    def drained(self) -> bool:
        """True when a worker started with ``-x`` may exit (it just found
        nothing to lease): ``is_empty()`` where counts are exact."""
        return self.is_empty()

    @abstractmethod
    def dead_letters(self, limit: int = 10) -> list[DeadLetter]:
        """The most recent dead-lettered tasks with their last error."""

    @abstractmethod
    def requeue_dead(self) -> int:
        """Move dead-lettered tasks back to pending with a fresh attempt count."""

    # -- what the run used (igneous.cost) ---------------------------------------
    # how often (seconds) a worker adds its tasks' usage; it always does on exit.
    # Seldom: each add is a write the queue's own work does not need (on a
    # nearly full disk it must not be what takes the last page)
    usage_flush_sec: float = 10.0

    @abstractmethod
    def add_usage(self, usage: Mapping[str, Mapping[str, float]]) -> None:
        """Add ``{task name: {field: amount}}`` to this queue's run totals
        (durably, atomically: workers add concurrently). ``purge`` clears them."""

    @abstractmethod
    def usage(self) -> dict[str, dict[str, float]]:
        """The run totals added so far, ``{task name: {field: amount}}``."""

    def next_stage(self) -> int:
        """The stage number that would run after everything queued now."""
        return 0

    def rezero(self) -> None:
        """Reset the completed counter (no-op where none is kept)."""

    # -- pipelines (igneous run) -----------------------------------------------
    supports_pipelines = False

    def insert_once(self, key: str, stages: Sequence[tuple[int, Iterable[str]]],
                    labels: dict[int, str]) -> bool:
        """Insert ``(stage, payloads)`` groups and record ``key`` in one
        transaction, unless ``key`` was recorded before (then insert nothing
        and return False). ``labels`` name stages for ``queue status``."""
        raise QueueError(f"{self.url} cannot hold a pipeline; use a local queue (a directory) "
                         "or postgresql://")

    def stage_labels(self) -> dict[int, str]:
        """Names of stages recorded by ``insert_once`` (for ``queue status``)."""
        return {}

    def iter_pending(self) -> Iterable[tuple[str, int]]:
        """(payload, stage) of every waiting task, in stage order (for queue cp)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its tasks")

    def close(self) -> None:
        pass

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
