"""Where ccl's wall time goes: per-stage task counts, durations and idle workers.

Runs ``igneous image ccl auto`` in this process's igneous (plan, then
``-p N`` workers on a durable local queue) on a fresh copy of a growth input
and records, for every task, the worker, its queue stage, start, end and
CPU-seconds (the worker loop's task call is wrapped before the workers fork).
Prints per stage: tasks, summed task wall and CPU, the stage's span from its
first start to its last end, and the worker-seconds left idle in that span
(span x workers - busy), plus the idle time between stages (barriers).

    python -m bench.ccl_stages [--size 4] [--shape 256,256,256] [--parallel 2] [--keep] [--quick-sec S]

Timing only; the output is checked elsewhere (tests/, bench/analysis.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench.harness import RUNS


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _instrument(log: Path) -> None:
    """Wrap the worker's task call so each task appends one JSON line to ``log``."""
    from igneous import worker
    from igneous.tasks import Task

    inner = worker._run_one

    def timed(queue, lease, opts, result, tally):
        t0, c0 = time.time(), _cpu()
        ok = inner(queue, lease, opts, result, tally)
        t1, c1 = time.time(), _cpu()
        row = {"pid": os.getpid(), "stage": lease.stage, "task": Task.from_json(lease.payload).name,
               "t0": t0, "t1": t1, "cpu": c1 - c0, "ok": ok}
        with open(log, "a") as f:  # one short line per append: atomic enough across 2 workers
            f.write(json.dumps(row) + "\n")
        return ok

    worker._run_one = timed


def per_worker(rows: list[dict]) -> str:
    n: dict[int, int] = defaultdict(int)
    for r in rows:
        n[r["pid"]] += 1
    return "/".join(str(v) for _, v in sorted(n.items()))


def summarize(rows: list[dict], parallel: int, start: float, end: float) -> list[str]:
    by_stage: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_stage[r["stage"]].append(r)
    lines = [f"{'stage':<6}{'task':<18}{'n':>5}{'task wall':>11}{'task CPU':>10}"
             f"{'mean':>8}{'max':>8}{'span':>8}{'idle w-s':>10}  tasks per worker"]
    prev_end = start
    barrier_idle = 0.0
    for stage in sorted(by_stage):
        rs = by_stage[stage]
        names = sorted({r["task"] for r in rs})
        lo, hi = min(r["t0"] for r in rs), max(r["t1"] for r in rs)
        busy = sum(r["t1"] - r["t0"] for r in rs)
        cpu = sum(r["cpu"] for r in rs)
        span = hi - lo
        durations = [r["t1"] - r["t0"] for r in rs]
        gap = max(0.0, lo - prev_end)
        barrier_idle += gap * parallel
        lines.append(f"{stage:<6}{','.join(names)[:17]:<18}{len(rs):>5}{busy:>11.2f}{cpu:>10.2f}"
                     f"{busy / len(rs):>8.2f}{max(durations):>8.2f}{span:>8.2f}"
                     f"{span * parallel - busy:>10.2f}  {per_worker(rs)}")
        prev_end = hi
    total_busy = sum(r["t1"] - r["t0"] for r in rows)
    wall = end - start
    lines.append(f"wall {wall:.2f} s (from planning to the workers' exit), tasks busy "
                 f"{total_busy:.2f} worker-s of {wall * parallel:.2f}; idle "
                 f"{wall * parallel - total_busy:.2f} worker-s, of which "
                 f"{barrier_idle:.2f} between stages and before the first task")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.ccl_stages", description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4, choices=[1, 4, 16], help="growth input (x voxels)")
    ap.add_argument("--shape", default="256,256,256")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--quick-sec", type=float, default=None,
                    help="the worker's quick-task bound (igneous.worker.QUICK_TASK_SEC, 0.05 s): "
                         "raise it to see on a loaded machine what an idle one does")
    args = ap.parse_args(argv)

    from bench.growth import tiled

    src_base = tiled("seg", args.size)
    run = RUNS / "ccl-stages"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    src = run / "src"
    shutil.copytree(src_base, src)
    log = run / "tasks.jsonl"
    _instrument(log)
    if args.quick_sec is not None:
        from igneous import worker

        worker.QUICK_TASK_SEC = args.quick_sec  # read by the worker loop at run time

    from igneous.submit import drain, submit
    from igneous.task_creation.ccl import plan_ccl_auto

    load = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    shape = [int(x) for x in args.shape.split(",")]
    stages = plan_ccl_auto(f"file://{src}", f"file://{run / 'dest'}", 0, shape, encoding="crackle")
    queue = str(run / "queue")
    submit(stages, queue)
    drain(queue, parallel=args.parallel)
    end = time.time()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    print(f"ccl auto, {args.size}x input, shape {args.shape}, {args.parallel} workers; "
          f"load average before: {load:.2f}"
          + (f"; quick tasks: under {args.quick_sec} s" if args.quick_sec is not None else ""))
    print("\n".join(summarize(rows, args.parallel, start, end)))
    print(f"workers' CPU (user+sys): {cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime:.2f} s")
    if not args.keep:
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
