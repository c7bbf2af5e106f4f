"""Many workers: 16 `igneous execute -x` processes on one queue.

For each backend (the local SQLite queue, PostgreSQL, SQS on moto) it
inserts N ``record`` tasks (igneous.tasks.testing: each execution leaves one
object named by its finish time on S3, moto), starts W worker processes
``igneous execute QUEUE -x`` at once, and when they have all exited lists
the records:

- tasks/s: N / (last record - workers started);
- lost: tasks with no record; run twice: tasks with more than one (leases
  are 600 s, far longer than the run, so any second run is a bug);
- exit: seconds from the last record to the last worker's exit (``-x`` must
  notice the queue is empty promptly, on SQS without trusting its
  approximate counts alone).

    python -m bench.workers                           # 16 workers, every backend
    python -m bench.workers --backend sqs --tasks 1000 --workers 16

Servers (PostgreSQL from Debian's binaries, moto_server) listen on
127.0.0.1 and are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

BACKENDS = ("local", "postgresql", "sqs")
MOTO_ENV = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                AWS_SESSION_TOKEN="bench", AWS_DEFAULT_REGION="us-east-1",
                AWS_EC2_METADATA_DISABLED="true")


def insert_records(spec: str, store_url: str, n: int, seconds: float = 0.0) -> None:
    """A fresh queue at ``spec`` holding ``n`` record tasks (keys 000000...)."""
    from igneous.queues import open_queue
    from igneous.submit import insert_stages
    from igneous.tasks import Task
    from igneous.tasks.testing import record

    with open_queue(spec, create=True) as q:
        q.purge()
        insert_stages(q, [[Task.of(record, dict(url=store_url, key=f"{i:06d}", seconds=seconds))
                           for i in range(n)]])


def run_workers(spec: str, workers: int, env: dict, timeout: float, igneous: str | None = None
                ) -> tuple[float, list[float], list[int]]:
    """Start ``workers`` ``igneous execute -x`` processes at once; (start time,
    each one's exit time, exit codes). Any still running after ``timeout``
    seconds is killed (by PID) and its exit time is the kill."""
    exe = igneous or str(Path(sys.executable).with_name("igneous"))
    argv = [exe, "execute", spec, "-x", "-q", "--lease-sec", "600"]
    start = time.time()
    procs = [subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(workers)]
    exits: list[float | None] = [None] * workers
    while None in exits:
        now = time.time()
        for i, p in enumerate(procs):
            if exits[i] is None and p.poll() is not None:
                exits[i] = now
        if now - start > timeout:
            for i, p in enumerate(procs):
                if exits[i] is None:
                    p.kill()
                    p.wait()
                    exits[i] = now
            break
        time.sleep(0.02)
    codes = []
    for p in procs:
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
        if p.returncode:
            print(f"worker exited {p.returncode}: {err[-500:]}", file=sys.stderr)
        codes.append(p.returncode)
    return start, [float(x) for x in exits], codes


def audit(store_url: str, n: int) -> dict:
    """Executions per task from the record objects: lost, run twice, last finish time."""
    from igneous.storage import open_store

    runs: Counter = Counter()
    last = 0.0
    for name in open_store(store_url).list():
        key, stamp = name.split("/", 1)
        runs[key] += 1
        last = max(last, float(stamp.split("-", 1)[0]))
    keys = [f"{i:06d}" for i in range(n)]
    return dict(lost=sum(1 for k in keys if runs[k] == 0),
                twice=sum(1 for k in keys if runs[k] > 1),
                stray=sum(1 for k in runs if k not in set(keys)), last_done=last)


def measure_backend(spec: str, store_url: str, n: int, workers: int, env: dict,
                    timeout: float = 600, seconds: float = 0.0) -> dict:
    """One run: insert, run ``workers`` processes, audit the records."""
    from igneous.storage import open_store

    store = open_store(store_url)
    store.delete(list(store.list()))
    insert_records(spec, store_url, n, seconds)
    start, exits, codes = run_workers(spec, workers, env, timeout)
    result = audit(store_url, n)
    last_done = result.pop("last_done")
    return dict(tasks=n, workers=workers, **result,
                seconds=round(last_done - start, 2),
                tasks_per_s=round(n / max(last_done - start, 1e-9), 1),
                exit_after_last_done=round(max(exits) - last_done, 2),
                first_exit_after_last_done=round(min(exits) - last_done, 2),
                exit_codes=sorted(set(codes)))


@contextmanager
def backends(names: list[str], work: Path) -> Iterator[dict[str, str]]:
    """{backend: queue spec} with the servers running; S3 (moto) always runs and
    its endpoint is in os.environ."""
    from tests.conftest import running_moto

    with ExitStack() as stack:
        url = stack.enter_context(running_moto(work / "moto.log"))
        os.environ.update(MOTO_ENV, AWS_ENDPOINT_URL=url)
        specs = {}
        if "local" in names:
            specs["local"] = str(work / "queue")
        if "postgresql" in names:
            from tests.pg_server import _server_user, find_bindir, running_postgres

            bindir = find_bindir()
            if bindir is None:
                raise SystemExit("PostgreSQL binaries not found: apt-get install postgresql")
            dsn = stack.enter_context(running_postgres(bindir, _server_user()))
            specs["postgresql"] = f"{dsn}?queue=workers"
        if "sqs" in names:
            specs["sqs"] = "sqs://igneous-bench-workers"
        yield specs


def make_bucket(name: str) -> str:
    import boto3

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return f"s3://{name}/records"


def main(argv: list[str] | None = None) -> None:
    from bench.harness import BENCH, save_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", action="append", choices=BACKENDS)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--task-seconds", type=float, default=0.0, help="work per task (sleep)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    work = BENCH / "workers"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with backends(args.backend or list(BACKENDS), work) as specs:
        store_url = make_bucket("igneous-bench-workers")
        env = dict(os.environ)
        for backend, spec in specs.items():
            for _ in range(args.repeat):
                row = dict(backend=backend, **measure_backend(spec, store_url, args.tasks,
                                                              args.workers, env,
                                                              seconds=args.task_seconds))
                print(json.dumps(row), flush=True)
                rows.append(row)
    out = save_results(f"workers-{time.strftime('%Y%m%dT%H%M%S')}.json", rows)
    print(f"raw results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
