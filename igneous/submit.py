"""Plan, then enqueue or run now; run workers until the queue is empty.

The one place where planned tasks meet a queue. A planner returns one plan
(a stage) or a list of plans (stages that must run in order: downsample
passes, ccl's steps). ``submit`` inserts them into a queue after whatever it
already holds, or runs them now across local processes; ``insert_stages`` is
the insert itself (pipelines use it with a key, so a re-run inserts nothing
twice); ``drain`` runs workers until the queue is empty and fails if any task
failed for good. The CLI, ``igneous run`` and the spatial index all go
through here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Any

from igneous.errors import UserError
from igneous.queues import DeadLetter, TaskQueue, open_queue
from igneous.queues.base import payloads_of
from igneous.supervisor import run_workers
from igneous.task_creation.common import Stages
from igneous.tasks import Task
from igneous.worker import WorkerOptions, WorkerResult, run_local

Plan = Iterable[Task]


def as_stages(result: Any) -> list[Plan]:
    """A planner returns one plan (a stage) or a list of plans (passes)."""
    if isinstance(result, (list, tuple)) and result and not hasattr(result[0], "to_json"):
        return list(result)
    return [result]


class _Counted:
    """Payloads of a plan as ``q`` holds them (a big grid plan as expansion
    tasks, igneous.queues.base.payloads_of), counted as the queue consumes them."""

    def __init__(self, plan: Iterable[Task | str], q: TaskQueue):
        self.plan, self.chained = plan, q.supports_pipelines
        self.n = 0

    def __iter__(self) -> Iterator[str]:
        for payload in payloads_of(self.plan, chained=self.chained):
            self.n += 1
            yield payload


def insert_stages(q: TaskQueue, stages: Sequence[Iterable[Task | str]], *,
                  first: int | None = None, stride: int = 1, key: str | None = None,
                  labels: dict[int, str] | None = None) -> int | None:
    """Insert ``stages[i]`` as queue stage ``first + i * stride`` (default
    first: right after everything already queued, so ``forge; merge;
    execute`` runs in order).

    With ``key``, everything goes in one transaction that records the key,
    and nothing is inserted when the key was recorded before (returns None).
    ``labels`` name stages for ``queue status``. Returns how many tasks went in.
    """
    if len(stages) > 1 and not q.supports_stages:
        raise UserError(f"{q.url} cannot hold several stages; give a local queue (a directory) "
                        "or run the steps one at a time")
    if first is None:
        first = q.next_stage()
    groups = [(first + i * stride, _Counted(plan, q)) for i, plan in enumerate(stages)]
    if key is None:
        return sum(q.insert(payloads, stage=stage) for stage, payloads in groups)
    if not q.insert_once(key, groups, labels or {}):
        return None
    return sum(payloads.n for _, payloads in groups)


def submit(stages: Sequence[Plan], queue: str | None, *, parallel: int = 1,
           what: str = "tasks") -> int:
    """Insert ``stages`` into ``queue``, or run them now across ``parallel``
    processes when no queue is given. Returns how many tasks."""
    if queue:
        with open_queue(queue, create=True) as q:
            if isinstance(stages, Stages) and not q.supports_stages:
                _say(f"Note: {stages.note}.")
                stages = [stages.single]
            total = insert_stages(q, stages) or 0
            planned = sum(len(p) for p in stages if isinstance(p, Sized))
            if planned > total:  # big plans go in as expansion tasks (GridPlan)
                _say(f"Inserted {total} tasks into {q.url}: workers expand them into "
                     f"{planned:,} {what}. Run: igneous execute {q.url}")
            else:
                _say(f"Inserted {total} {what} into {q.url}. Run: igneous execute {q.url}")
        return total
    n = run_local(stages, parallel=parallel)
    _say(f"Executed {n} {what}.")
    return n


@dataclass
class Drained:
    result: WorkerResult
    dead: int  # tasks that failed for good
    cause: DeadLetter | None  # the earliest of them


def root_failure(q: TaskQueue, below: int | None = None) -> DeadLetter | None:
    """The dead-lettered task of the earliest stage (below ``below``): the
    cause, where later steps only report that they were held back."""
    dead = [d for d in q.dead_letters(1000) if below is None or d.stage < below]
    return min(dead, key=lambda d: d.stage) if dead else None


def drain(queue: str, *, parallel: int = 1, lease_sec: float = 600.0, max_attempts: int = 3,
          quiet: bool = True) -> Drained:
    """Run ``parallel`` workers on ``queue`` until nothing is pending or leased."""
    opts = WorkerOptions(lease_sec=lease_sec, exit_on_empty=True, max_attempts=max_attempts,
                         quiet=quiet)
    result = run_workers(queue, opts, parallel=parallel)
    with open_queue(queue, create=False) as q:
        return Drained(result, q.counts(detailed=False).dead, root_failure(q))


def fail_if_dead(drained: Drained, queue: str, *, rerun: str) -> None:
    """Exit 130 when interrupted, 1 (one line naming the first failure) when
    tasks failed for good; ``rerun`` is the command that resumes."""
    if drained.result.interrupted:
        _say(f"Interrupted: run `{rerun}` to resume.")
        sys.exit(130)
    if drained.dead:
        msg = drained.cause.error if drained.cause else ""
        _say(f"igneous: {drained.dead} task(s) failed for good ({msg}); see `igneous queue status "
             f"{queue}`, fix, `igneous queue release --dead {queue}`, run `{rerun}` again.")
        sys.exit(1)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
