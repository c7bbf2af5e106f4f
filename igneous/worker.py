"""Running tasks: the queue worker loop and the no-queue local pool.

Worker loop (``igneous execute``): lease, run, delete on success. A background
thread renews the leases a worker holds, so a long task is not handed to a
second worker. Failures are recorded and retried; after ``max_attempts`` the
task moves to the dead-letter list. Quick tasks are leased in growing batches
(one transaction serves many tasks); slow ones one at a time so work spreads
evenly. SIGINT/SIGTERM: the current task finishes, the rest of the batch is
released, the worker exits; a second signal abandons the current task too.

A task that runs past ``task_timeout`` seconds is interrupted (SIGALRM) and
counts as a failed attempt, so a task that hangs is dead-lettered after
``max_attempts`` like one that raises; a task that kills its worker (the OOM
killer, a segfault) is caught by the parent process watching the worker
(igneous.supervisor) and counts as a failed attempt too.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from igneous.cost import Measure, Tally, Usage, add_into, write_report
from igneous.errors import UserError
from igneous.queues import Lease, TaskQueue, open_queue
from igneous.tasks import EXPAND_TASK, Task

MAX_BATCH = 64
QUICK_TASK_SEC = 0.05
MAX_IDLE_SLEEP = 2.0
# longest wait while other workers hold the tasks of a stage: its barrier lifts
# the moment they finish, so a worker backed off to MAX_IDLE_SLEEP would idle
# up to ~2 s at every stage (seconds of a short multi-stage job like ccl auto)
MAX_BARRIER_SLEEP = 0.1


@dataclass
class WorkerOptions:
    lease_sec: float = 600.0
    min_sec: float = -1.0  # -1 forever, 0 at most one task, >0 stop after this long
    num_tasks: int | None = None  # stop after this many tasks
    exit_on_empty: bool = False
    max_attempts: int = 3
    retry_delay: float = 1.0
    quiet: bool = False
    region: str | None = None
    task_timeout: float | None = None  # seconds one task may run (None: no limit)

    def __post_init__(self) -> None:
        if not self.lease_sec > 0:
            raise UserError(f"--lease-sec must be positive, not {self.lease_sec}")
        if self.max_attempts < 1:
            raise UserError(f"--max-attempts must be at least 1, not {self.max_attempts}")
        if self.num_tasks is not None and self.num_tasks < 0:
            raise UserError(f"--num-tasks must be >= 0, not {self.num_tasks}")
        if self.task_timeout is not None and not self.task_timeout > 0:
            raise UserError(f"--task-timeout must be positive, not {self.task_timeout}")


class TaskTimeout(Exception):
    """A task ran longer than ``WorkerOptions.task_timeout``."""


class _Deadline:
    """Interrupts the running task with TaskTimeout after ``seconds`` (SIGALRM;
    main thread only, elsewhere no limit). Blocking C calls are interrupted when
    they return to Python."""

    def __init__(self, seconds: float | None):
        on_main = threading.current_thread() is threading.main_thread()
        self.seconds = seconds if on_main and hasattr(signal, "setitimer") else None
        self._previous = None

    def _expire(self, signum, frame) -> None:
        raise TaskTimeout(f"ran longer than the task timeout of {self.seconds:g} s")

    def __enter__(self) -> _Deadline:
        if self.seconds:
            self._previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc) -> None:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)


@dataclass
class WorkerResult:
    executed: int = 0
    failed: int = 0
    dead: int = 0
    interrupted: bool = False


class _Renewer(threading.Thread):
    """Keeps the leases a worker holds alive while it works on them."""

    def __init__(self, queue: TaskQueue, lease_sec: float):
        super().__init__(daemon=True)
        self.queue = queue
        self.lease_sec = lease_sec
        self.held: dict[str, Lease] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()

    def hold(self, leases: Sequence[Lease]) -> None:
        with self.lock:
            self.held.update((x.handle, x) for x in leases)

    def drop(self, leases: Sequence[Lease]) -> None:
        with self.lock:
            for x in leases:
                self.held.pop(x.handle, None)

    def run(self) -> None:
        interval = max(0.5, self.lease_sec / 3)
        while not self.done.wait(interval):
            with self.lock:
                leases = list(self.held.values())
            if not leases:
                continue
            try:  # one round trip for the whole batch: a short lease must not run out mid-sweep
                self.queue.renew_many(leases, seconds=self.lease_sec)
            except Exception as e:  # a missed renewal only risks a duplicate run
                print(f"igneous: could not renew leases: {e}", file=sys.stderr)


class _Stop:
    """SIGINT/SIGTERM handling: first signal = stop after this task."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._first = 0.0
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        # a terminal's Ctrl-C reaches both the parent (which forwards it) and
        # the children: signals less than a second apart count as one
        if self.event.is_set() and time.monotonic() - self._first > 1.0:
            raise KeyboardInterrupt
        if not self.event.is_set():
            self._first = time.monotonic()
        self.event.set()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Journal:
    """What a worker tells whoever watches it (igneous.supervisor.PipeJournal)
    about the tasks it holds and runs; this one tells nobody."""

    def leased(self, leases: list[Lease]) -> None:
        """A new batch is held."""

    def start(self, i: int) -> None:
        """Task ``i`` of the batch runs."""

    def end(self, i: int, ok: bool) -> None:
        """Task ``i`` finished (``ok``) or failed (already recorded as such)."""

    def deleted(self) -> None:
        """Every task of the batch that finished so far is marked done."""

    def settled(self) -> None:
        """The batch is over: nothing held."""


def run_worker(queue: TaskQueue | str, opts: WorkerOptions | None = None, *,
               journal: Journal | None = None) -> WorkerResult:
    """Execute tasks from ``queue`` until told to stop (see WorkerOptions);
    ``journal`` is told what the worker holds and runs."""
    from igneous.memory import return_freed_memory
    from igneous.storage import probe

    probing, probe.ENABLED = probe.ENABLED, False  # planners probed the buckets already
    opts = opts or WorkerOptions()
    journal = journal or Journal()
    if isinstance(queue, str):
        queue = open_queue(queue, create=False, region=opts.region)
    return_freed_memory()
    result = WorkerResult()
    stop = _Stop()
    stop.install()
    renewer = _Renewer(queue, opts.lease_sec)
    renewer.start()
    tally = Tally()
    started = time.monotonic()
    batch_size = 1
    last_stage: int | None = None
    idle_sleep = 0.02
    try:
        while not stop.event.is_set():
            if opts.num_tasks is not None and result.executed >= opts.num_tasks:
                break
            if opts.min_sec == 0 and result.executed >= 1:
                break
            if opts.min_sec > 0 and time.monotonic() - started >= opts.min_sec:
                break
            want = batch_size
            if opts.num_tasks is not None:
                want = min(want, opts.num_tasks - result.executed)
            if opts.min_sec == 0:
                want = 1
            leases = queue.lease(want, seconds=opts.lease_sec)
            if not leases:
                # (one cheap query; SQS, which has no stages, is only asked when it matters)
                if opts.exit_on_empty:
                    empty = queue.drained()  # SQS: confirmed, not one approximate reading
                else:
                    empty = queue.is_empty() if queue.supports_stages else True
                if opts.exit_on_empty and empty:
                    break
                stop.event.wait(idle_sleep * (0.5 + random.random()))
                longest = MAX_BARRIER_SLEEP if queue.supports_stages and not empty else MAX_IDLE_SLEEP
                idle_sleep = min(longest, idle_sleep * 2)
                batch_size = 1  # what comes after a wait (a barrier) may be slow
                continue
            idle_sleep = 0.02
            renewer.hold(leases)
            journal.leased(leases)
            finished: list[Lease] = []
            try:
                for i, lease in enumerate(leases):
                    if stop.event.is_set():
                        queue.release(leases[i:])
                        break
                    t0 = time.monotonic()
                    journal.start(i)
                    ok = _run_one(queue, lease, opts, result, tally)
                    journal.end(i, ok)
                    elapsed = time.monotonic() - t0
                    if ok:
                        finished.append(lease)
                        if elapsed > QUICK_TASK_SEC:
                            # slow task: report it done now, lease singly from here on
                            queue.delete(finished)
                            journal.deleted()
                            renewer.drop(finished)
                            finished = []
                    batch_size = min(MAX_BATCH, batch_size * 2) if elapsed < QUICK_TASK_SEC else 1
            except KeyboardInterrupt:
                queue.delete(finished)
                done = {x.handle for x in finished}
                queue.release([x for x in leases if x.handle not in done])
                result.interrupted = True
                raise
            queue.delete(finished)
            journal.settled()
            renewer.drop(leases)
            if queue.supports_stages and (len(leases) < want or leases[0].stage != last_stage):
                # batches grow only within a stage known to be quick: a batch of a
                # new stage's slow tasks would leave the other workers idle
                batch_size = 1
            last_stage = leases[-1].stage
            if tally.age() >= queue.usage_flush_sec:
                _hand_on(queue, tally)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        renewer.done.set()
        stop.restore()
        _hand_on(queue, tally)
        probe.ENABLED = probing
    result.interrupted = result.interrupted or stop.event.is_set()
    return result


def _hand_on(queue: TaskQueue, tally: Tally) -> None:
    """Add what this worker's tasks used to the queue's run totals."""
    usage = tally.take()
    if not usage:
        return
    try:
        queue.add_usage(usage)
    except Exception as e:  # noqa: BLE001 - accounting must never stop the work
        tally.put_back(usage)
        print(f"igneous: could not record usage in {queue.url}: {one_line(str(e))}",
              file=sys.stderr)


def _run_one(queue: TaskQueue, lease: Lease, opts: WorkerOptions, result: WorkerResult,
             tally: Tally) -> bool:
    task = None
    measure = Measure()
    try:
        task = Task.from_json(lease.payload)
        with measure, _Deadline(opts.task_timeout):
            if task.name == EXPAND_TASK:
                _expand(queue, lease, task)
            else:
                task()
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - a task may raise anything; record it
        if task is not None:
            tally.add(task.name, measure.row(ok=False))
        result.failed += 1
        error = one_line(f"{type(e).__name__}: {e}")
        # a malformed or unknown task can never succeed: dead-letter it at once
        attempts = 1 if isinstance(e, UserError) else opts.max_attempts
        dead = queue.fail(lease, error, max_attempts=attempts, retry_delay=opts.retry_delay)
        result.dead += int(dead)
        if not opts.quiet:
            what = "dead-lettered" if dead else f"will retry (attempt {lease.attempt})"
            print(f"igneous: task {describe(task)} failed, {what}: {error}", file=sys.stderr)
            if not isinstance(e, UserError) and os.environ.get("IGNEOUS_TRACEBACK"):
                traceback.print_exc()
        return False
    tally.add(task.name, measure.row())
    result.executed += 1
    return True


def one_line(text: str, limit: int = 2000) -> str:
    """An error message as one line of bounded length (queues store it)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe(task: Task | None) -> str:
    """Which task: its name and the block it works on, e.g. ``transfer@[0, 0, 0]``."""
    if task is None:
        return "(unreadable)"
    where = task.kwargs.get("offset")
    if where is None:
        where = task.kwargs.get("label") or task.kwargs.get("prefix") or task.kwargs.get("step")
    return f"{task.name}@{where}" if where is not None else task.name
def _expand(queue: TaskQueue, lease: Lease, task: Task) -> None:
    """Insert the real tasks an expansion task stands for, into its stage.

    Where the queue can insert under a key once (local, PostgreSQL), a worker
    killed between inserting and deleting the expansion task cannot insert its
    tasks twice; elsewhere (SQS) that crash costs one range run twice."""
    from igneous.task_creation.common import expand

    payloads = [t.to_json() for t in expand(**task.kwargs)]  # refuses a foreign plan
    if queue.supports_pipelines:
        key = f"expand:{task.kwargs['plan']['id']}:{task.kwargs['begin']}"
        queue.insert_once(key, [(lease.stage, payloads)], {})
    else:
        queue.insert(payloads, stage=lease.stage)


# -- no queue: run now in a local process pool --------------------------------

def run_local(stages: Iterable[Iterable[Task]], parallel: int = 1, *, progress: bool = True,
              label: str = "local") -> int:
    """Run stages of tasks in order, each across ``parallel`` processes; what
    they used goes into a run report (igneous.cost.write_report)."""
    from tqdm import tqdm

    usage: Usage = {}
    executed = 0
    for tasks in stages:
        total = len(tasks) if hasattr(tasks, "__len__") else None
        show = progress and sys.stderr.isatty()
        with tqdm(total=total, desc="tasks", unit="task", disable=not show) as bar:
            if parallel <= 1:
                results: Iterable[tuple[str, dict[str, float]]] = (
                    run_measured(task) for task in tasks)
                for name, row in results:
                    add_into(usage, {name: row})
                    executed += 1
                    bar.update()
            else:
                ctx = mp.get_context("fork")
                with ctx.Pool(parallel) as pool:
                    payloads = (t.to_json() for t in tasks)
                    for name, row in pool.imap_unordered(run_measured, payloads, chunksize=1):
                        add_into(usage, {name: row})
                        executed += 1
                        bar.update()
    path = write_report(usage, label, queue=None, executed_now=executed)
    if path and progress:
        print(f"igneous: run report: {path}", file=sys.stderr)
    return executed


def run_measured(task: Task | str) -> tuple[str, dict[str, float]]:
    """Run one task (or payload); (its name, what it used)."""
    if isinstance(task, str):
        task = Task.from_json(task)
    with Measure() as measure:
        task()
    return task.name, measure.row()
