"""``igneous execute``: worker processes watched by a parent that outlives them.

Every worker (one for ``-p 1``) runs in a forked child; the parent only
watches. A child tells its parent, through a pipe, which tasks it holds and
which one it is running (a few bytes per task). When a child dies by a signal
in the middle of a task (the out-of-memory killer, a segfault in a library,
a task that kills its process), the parent knows which task did it:

- that task's attempt is recorded as a failure with the signal as its cause,
  so it is retried, then dead-lettered after ``--max-attempts`` like a task
  that raises (not after the queue's lease limit, which exists for workers
  that vanish with their parent: a preempted machine);
- the tasks of the same batch are settled at once: finished ones are marked
  done, unstarted ones are given back unpenalised (they do not wait for their
  leases to run out);
- a new child takes the dead one's place, so the run goes on.

A child dies with its parent (``PR_SET_PDEATHSIG`` on Linux): killing
``igneous execute`` stops its work, as it did when the worker ran in-process.
Where ``fork`` is unavailable the worker runs in this process, unwatched.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection, wait

from igneous.cost import write_report
from igneous.errors import UserError
from igneous.queues import Lease, TaskQueue, open_queue
from igneous.tasks import Task
from igneous.worker import Journal, WorkerOptions, WorkerResult, describe, one_line, run_worker

WATCH_SEC = 1.0


class PipeJournal(Journal):
    """The child's side of the pipe: what it holds and what it is doing."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def leased(self, leases: list[Lease]) -> None:
        self.conn.send(("leased", leases))

    def start(self, i: int) -> None:
        self.conn.send(("start", i))

    def end(self, i: int, ok: bool) -> None:
        self.conn.send(("end", i, ok))

    def deleted(self) -> None:
        self.conn.send(("deleted",))

    def settled(self) -> None:
        self.conn.send(("settled",))


@dataclasses.dataclass
class _Child:
    """The parent's picture of one worker process."""

    proc: mp.process.BaseProcess
    conn: Connection
    opts: WorkerOptions
    started: float
    leases: list[Lease] = dataclasses.field(default_factory=list)
    state: dict[int, str] = dataclasses.field(default_factory=dict)  # index -> ok/failed/done
    running: int | None = None
    ran: int = 0  # tasks it ended, done or failed
    done: int = 0  # tasks it finished (it reports them itself unless killed)
    eof: bool = False  # the child closed its end (it is exiting)

    def apply(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "leased":
            self.leases, self.state, self.running = msg[1], {}, None
        elif kind == "start":
            self.running = msg[1]
        elif kind == "end":
            self.state[msg[1]] = "ok" if msg[2] else "failed"
            self.running = None
            self.ran += 1
            self.done += int(msg[2])
        elif kind == "deleted":
            self.state = {i: ("done" if s == "ok" else s) for i, s in self.state.items()}
        elif kind == "settled":
            self.leases, self.state, self.running = [], {}, None

    def drain(self) -> None:
        try:
            while self.conn.poll():
                self.apply(self.conn.recv())
        except (EOFError, OSError):
            self.eof = True


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(1)


def _child_main(spec: str, opts: WorkerOptions, results, conn: Connection, parent: int) -> None:
    # a replacement is forked while the parent's forwarding handler is installed
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    try:
        res = run_worker(spec, opts, journal=PipeJournal(conn))
    except UserError as e:  # reported once, as one line, by the parent
        results.put(str(e))
        sys.exit(2)
    results.put((res.executed, res.failed, res.dead, res.interrupted))


class _Supervisor:
    def __init__(self, spec: str, opts: WorkerOptions, parallel: int):
        self.spec, self.opts, self.parallel = spec, opts, parallel
        self.ctx = mp.get_context("fork")
        self.results = self.ctx.Queue()
        self.children: list[_Child] = []
        self.total = WorkerResult()
        self.stopping = False
        self.killed: list[str] = []
        self.crashed = 0  # children that exited with an error of their own
        self._queue: TaskQueue | None = None

    @property
    def queue(self) -> TaskQueue:
        """The parent's own handle (never shared with a child or a thread)."""
        if self._queue is None:
            self._queue = open_queue(self.spec, create=False, region=self.opts.region)
        return self._queue

    def spawn(self, opts: WorkerOptions) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_child_main,
                                args=(self.spec, opts, self.results, writer, os.getpid()))
        proc.start()
        writer.close()
        self.children.append(_Child(proc, reader, opts, time.monotonic()))

    def forward(self, signum, frame) -> None:
        self.stopping = True
        for c in self.children:
            if c.proc.is_alive():
                os.kill(c.proc.pid, signum)

    def run(self) -> WorkerResult:
        for _ in range(self.parallel):
            self.spawn(self.opts)
        old = {s: signal.signal(s, self.forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.children:
                by_conn = {c.conn: c for c in self.children if not c.eof}
                by_sentinel = {c.proc.sentinel: c for c in self.children}
                for ready in wait([*by_conn, *by_sentinel], timeout=WATCH_SEC):
                    if ready in by_conn:
                        by_conn[ready].drain()
                for ready in wait(list(by_sentinel), timeout=0):
                    self.reap(by_sentinel[ready])
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self._queue is not None:
                self._queue.close()
        return self.collect()

    def reap(self, child: _Child) -> None:
        child.proc.join()
        child.drain()
        child.conn.close()
        self.children.remove(child)
        code = child.proc.exitcode or 0
        if code > 0:  # an error of its own (reported above): give back what it held
            self.crashed += 1
            self.settle(child, None, "")
        if code >= 0:
            return
        self.total.executed += child.done  # a killed child reports nothing itself
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if child.running is None:
            self.settle(child, None, name)
            if not self.stopping:
                self.killed.append(name)
            return
        self.settle(child, child.running, name)
        replacement = self.remaining(child)
        if replacement is not None and not self.stopping:
            self.spawn(replacement)

    def settle(self, child: _Child, running: int | None, signame: str) -> None:
        """A dead child's batch: done ones done, the running one failed, the rest back."""
        leases = child.leases
        if not leases:
            return
        done = [x for i, x in enumerate(leases) if child.state.get(i) == "ok"]
        back = [x for i, x in enumerate(leases) if i != running and i not in child.state]
        try:
            self.queue.delete(done)
            self.queue.release(back)
            if running is not None:
                self.fail(leases[running], signame)
        except Exception as e:  # noqa: BLE001 - the leases run out by themselves
            print(f"igneous: could not give back the tasks a failed worker held in {self.spec}: "
                  f"{one_line(str(e))} (they return when their leases expire, or at once with "
                  f"`igneous queue release {self.spec}` once no worker runs)", file=sys.stderr)

    def fail(self, lease: Lease, signame: str) -> None:
        error = (f"WorkerKilled: the worker process running this task was killed by {signame}"
                 + (" (out of memory? see `dmesg`)" if signame == "SIGKILL" else ""))
        dead = self.queue.fail(lease, error, max_attempts=self.opts.max_attempts,
                               retry_delay=self.opts.retry_delay)
        self.total.failed += 1
        self.total.dead += int(dead)
        if not self.opts.quiet:
            try:
                task: Task | None = Task.from_json(lease.payload)
            except Exception:  # noqa: BLE001 - an unreadable payload is still reported
                task = None
            what = "dead-lettered" if dead else f"will retry (attempt {lease.attempt})"
            print(f"igneous: task {describe(task)} failed, {what}: {error}", file=sys.stderr)

    def remaining(self, child: _Child) -> WorkerOptions | None:
        """Options for a child replacing ``child``, or None when its work was done."""
        opts = child.opts
        if opts.min_sec == 0:
            return None
        if opts.num_tasks is not None:
            left = opts.num_tasks - child.ran - 1
            if left <= 0:
                return None
            opts = dataclasses.replace(opts, num_tasks=left)
        if opts.min_sec > 0:
            left_sec = opts.min_sec - (time.monotonic() - child.started)
            if left_sec <= 0:
                return None
            opts = dataclasses.replace(opts, min_sec=left_sec)
        return opts

    def collect(self) -> WorkerResult:
        errors: list[str] = []
        while not self.results.empty():
            item = self.results.get()
            if isinstance(item, str):
                errors.append(item)
                continue
            executed, failed, dead, interrupted = item
            self.total.executed += executed
            self.total.failed += failed
            self.total.dead += dead
            self.total.interrupted |= interrupted
        self.total.interrupted |= self.stopping
        if errors:
            raise UserError(errors[0])
        if self.crashed:
            raise UserError(f"{self.crashed} of {self.parallel} worker processes failed (see above)")
        if self.killed and not self.opts.quiet:
            print(f"igneous: {len(self.killed)} worker process(es) were killed between tasks "
                  f"({', '.join(sorted(set(self.killed)))})", file=sys.stderr)
        return self.total


def run_workers(spec: str, opts: WorkerOptions, parallel: int = 1) -> WorkerResult:
    """``igneous -p N execute``: N watched worker processes on one queue, with a progress bar."""
    queue = open_queue(spec, create=False, region=opts.region)  # fail early and clearly
    bar = _ProgressPoller(queue) if (not opts.quiet and sys.stderr.isatty()) else None
    if bar:
        bar.start()
    try:
        if "fork" in mp.get_all_start_methods():
            result = _Supervisor(spec, opts, max(1, parallel)).run()
        else:
            result = run_worker(queue, opts)
        _report_queue(queue, result, opts)
        return result
    finally:
        if bar:
            bar.stop()


def _report_queue(queue: TaskQueue, result: WorkerResult, opts: WorkerOptions) -> None:
    """Write the run report of ``queue``: everything its workers recorded so far."""
    try:
        usage = queue.usage()
    except Exception as e:  # noqa: BLE001 - a report must never fail the run
        print(f"igneous: could not read usage from {queue.url}: {one_line(str(e))}", file=sys.stderr)
        return
    path = write_report(usage, queue.url, queue=queue.url, executed_now=result.executed,
                        failed_now=result.failed)
    if path and not opts.quiet:
        print(f"igneous: run report: {path}", file=sys.stderr)


class _ProgressPoller(threading.Thread):
    """A tqdm bar fed by the queue's own counters (works across processes)."""

    def __init__(self, queue: TaskQueue):
        super().__init__(daemon=True)
        self.queue = queue
        self.done = threading.Event()

    def run(self) -> None:
        from tqdm import tqdm

        c = self.queue.counts(detailed=False)
        base = c.completed or 0
        bar = tqdm(total=c.remaining, desc="tasks", unit="task", dynamic_ncols=True)
        try:
            while not self.done.wait(1.0):
                c = self.queue.counts(detailed=False)
                if c.completed is None:
                    bar.total = c.remaining + bar.n
                    continue
                finished = c.completed - base
                bar.total = finished + c.remaining
                bar.update(finished - bar.n)
        finally:
            bar.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=2)
