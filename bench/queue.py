"""Queue overhead: insert N no-op tasks into the durable local queue, run them with 2 workers.

ours:       igneous.queues.open_queue(DIR).insert(Task("noop") ...)
            igneous -p 2 execute -x -q DIR
reference:  taskqueue.TaskQueue("fq://DIR").insert(MockTask() ...)   (python-task-queue's
            built-in no-op task, registered whenever taskqueue is imported)
            igneous -p 2 execute -x -q fq://DIR   (reference venv)

Reported: the insert rate measured inside the inserting process (tasks / seconds
spent in ``insert``), and the execute rate = N / wall time of the whole
``execute`` command (start-up included, as a user sees it).

    python -m bench.queue [-n 20000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_N = 20_000
EXECUTE = "{igneous} -p 2 execute -x -q {queue_url}"
# run by each implementation's own python; `bench` is appended to sys.path
# (after site-packages) so nothing of ours shadows the reference's packages
INSERT = ("{python} -c 'import sys; sys.path.append(sys.argv[1]); "
          "from bench.queue import insert_main; insert_main(sys.argv[2:])' "
          "{root} {impl} {queue} {n}")


def insert_main(argv: list[str]) -> None:
    """Insert N no-op tasks into a fresh queue; print {"n", "insert_sec"} as JSON.

    Imports only what the named implementation has, so the reference's python
    can run it too.
    """
    impl, path, n = argv[0], argv[1], int(argv[2])
    if impl == "ours":
        from igneous.queues import open_queue
        from igneous.tasks import Task

        q = open_queue(path)
        t0 = time.perf_counter()
        q.insert(Task("noop") for _ in range(n))
        sec = time.perf_counter() - t0
    else:
        from taskqueue import MockTask, TaskQueue

        tq = TaskQueue(f"fq://{path}")
        t0 = time.perf_counter()
        tq.insert(MockTask() for _ in range(n))
        sec = time.perf_counter() - t0
    print(json.dumps({"n": n, "insert_sec": sec}))


def tasks_left(ctx) -> int:
    """Tasks not done after execute (must be 0): still queued, or dead-lettered (ours)."""
    path = Path(ctx["queue"])
    if ctx["impl"] == "ours":
        import sqlite3

        with sqlite3.connect(path / "queue.sqlite") as db:
            return sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                       for t in ("tasks", "dead"))
    return sum(1 for _ in (path / "queue").iterdir())  # FileQueue: one file per task


def workflow(n: int = DEFAULT_N):
    from bench.harness import Step, Workflow

    def prepare(run_dir, impl):
        return {"queue": run_dir / "queue", "n": n}

    def insert_metrics(sample, ctx):
        line = sample.stdout.strip().splitlines()[-1]
        got = json.loads(line)
        return {"insert tasks/s": got["n"] / got["insert_sec"]}

    def execute_metrics(sample, ctx):
        return {"execute tasks/s": ctx["n"] / sample.wall, "tasks left": tasks_left(ctx)}

    return Workflow(
        name="queue",
        description=f"insert {n:,} no-op tasks, execute with 2 workers (local durable queue)",
        steps=[
            Step("insert", {"ours": INSERT, "reference": INSERT}, insert_metrics),
            Step("execute", {"ours": EXECUTE, "reference": EXECUTE}, execute_metrics),
        ],
        prepare=prepare,
        compare=None,
        timeout=900,
    )


def workflows() -> list:
    """Called by bench.harness.load_workflows."""
    return [workflow()]


def main(argv: list[str] | None = None) -> None:
    from bench import harness

    ap = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=DEFAULT_N, help=f"tasks per run (default {DEFAULT_N})")
    harness.add_common_args(ap)
    args = ap.parse_args(argv)
    harness.load_workflows()
    harness.register(workflow(args.n))
    harness.run_and_report(["queue"], repeat=args.repeat, compare=False, keep=args.keep,
                           impls=args.impl)


if __name__ == "__main__":
    main()
