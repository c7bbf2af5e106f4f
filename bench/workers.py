"""Many workers: 16 `igneous execute -x` processes on one queue.

For each backend (the local SQLite queue, PostgreSQL, SQS on moto) it
inserts N ``record`` tasks (igneous.tasks.testing: each execution leaves one
empty object named by its finish time, on a local directory (``--records
file``, cheap) or on S3, moto (``--records s3``)), starts W worker processes
``igneous execute QUEUE -x --lease-sec L`` at once, and when they have all
exited lists the records:

- tasks/s: N / (last record - workers started);
- lost: tasks with no record (must be 0);
- run twice: tasks with more than one record, split into long and short
  tasks. Every K-th task (``--long-every K``) works ``--long-seconds S``,
  longer than its lease ``L``: only the worker's renewals keep it from being
  handed to a second worker;
- exit: seconds from the last record to the first and last worker's exit
  (``-x`` must notice the queue is empty promptly, on SQS without trusting
  its approximate counts alone);
- the load average, the workers' summed resident memory (peak) and the
  records' and queue's disk use, sampled while the workers run.

    python -m bench.workers                           # 16 workers, every backend
    python -m bench.workers --backend sqs --tasks 1000 --workers 16
    python -m bench.workers --backend local --tasks 100000 --workers 16 \
        --lease-sec 2 --long-every 1000 --long-seconds 5 --records file

Servers (PostgreSQL from Debian's binaries, moto_server) listen on
127.0.0.1 and are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

BACKENDS = ("local", "postgresql", "sqs")
MOTO_ENV = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                AWS_SESSION_TOKEN="bench", AWS_DEFAULT_REGION="us-east-1",
                AWS_EC2_METADATA_DISABLED="true")


@dataclass(frozen=True)
class Storm:
    """What one run asks of the workers."""

    tasks: int
    workers: int = 16
    lease_sec: float = 600.0
    task_seconds: float = 0.0  # work of an ordinary task (sleep)
    long_every: int = 0  # every K-th task (0: none) works long_seconds instead
    long_seconds: float = 0.0
    timeout: float = 600.0  # a worker still running this long after the start is killed

    def seconds_of(self, i: int) -> float:
        return self.long_seconds if self.is_long(i) else self.task_seconds

    def is_long(self, i: int) -> bool:
        return bool(self.long_every) and i % self.long_every == 0


def key_of(i: int) -> str:
    return f"{i:06d}"


def insert_records(spec: str, store_url: str, storm: Storm) -> None:
    """A fresh queue at ``spec`` holding ``storm.tasks`` record tasks (keys 000000...)."""
    from igneous.queues import open_queue
    from igneous.submit import insert_stages
    from igneous.tasks import Task
    from igneous.tasks.testing import record

    with open_queue(spec, create=True) as q:
        q.purge()
        insert_stages(q, [(Task.of(record, dict(url=store_url, key=key_of(i),
                                                seconds=storm.seconds_of(i)))
                           for i in range(storm.tasks))])


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Run:
    """What the harness saw of the worker processes."""

    start: float
    exits: list[float]
    codes: list[int]
    load: list[float]  # 1-minute load average, sampled every second
    peak_rss: int  # the workers' summed resident memory, at its highest
    renew_errors: int  # "could not renew a lease" lines on the workers' stderr
    cpu_sec: float  # the workers' CPU-seconds (user + system)


def run_workers(spec: str, storm: Storm, env: dict, logs: Path, igneous: str | None = None) -> Run:
    """Start ``storm.workers`` ``igneous execute -x`` processes at once and
    wait for them; any still running ``storm.timeout`` seconds after the start
    is killed (by PID) and its exit time is the kill. Their stderr goes to
    ``logs/worker-I.err``."""
    exe = igneous or str(Path(sys.executable).with_name("igneous"))
    argv = [exe, "execute", spec, "-x", "-q", "--lease-sec", f"{storm.lease_sec:g}"]
    logs.mkdir(parents=True, exist_ok=True)
    errs = [logs / f"worker-{i}.err" for i in range(storm.workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    procs = []
    for path in errs:
        with open(path, "wb") as err:
            procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err))
    exits: list[float | None] = [None] * storm.workers
    load: list[float] = []
    peak_rss = 0
    sampled = 0.0
    while None in exits:
        now = time.time()
        for i, p in enumerate(procs):
            if exits[i] is None and p.poll() is not None:
                exits[i] = now
        if now - sampled >= 1.0:
            sampled = now
            load.append(os.getloadavg()[0])
            peak_rss = max(peak_rss, sum(_rss_bytes(p.pid) for p in procs if p.returncode is None))
        if now - start > storm.timeout:
            for i, p in enumerate(procs):
                if exits[i] is None:
                    p.kill()
                    p.wait()
                    exits[i] = now
            break
        time.sleep(0.02)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    renew_errors = 0
    for p, path in zip(procs, errs):
        text = path.read_text(errors="replace")
        renew_errors += text.count("could not renew")
        if p.returncode:
            print(f"worker exited {p.returncode}: {text[-500:]}", file=sys.stderr)
    return Run(start, [float(x) for x in exits], [p.returncode for p in procs], load, peak_rss,
               renew_errors, cpu)


def audit(store_url: str, storm: Storm) -> dict:
    """Executions per task from the record objects: lost, run twice (long and
    short tasks apart), strays, the last finish time."""
    from igneous.storage import open_store

    runs: Counter = Counter()
    finished: dict[str, list[float]] = {}
    for name in open_store(store_url).list():
        key, stamp = name.split("/", 1)
        runs[key] += 1
        finished.setdefault(key, []).append(float(stamp.split("-", 1)[0]))
    last = max((t for times in finished.values() for t in times), default=0.0)
    keys = {key_of(i): i for i in range(storm.tasks)}
    twice = [k for k, i in keys.items() if runs[k] > 1]
    # seconds between a task's first and last finish: about the lease when a
    # lease ran out, about 0 when two workers were handed it at once
    gaps = sorted(max(finished[k]) - min(finished[k]) for k in twice)
    return dict(lost=sum(1 for k in keys if runs[k] == 0),
                twice=len(twice),
                twice_long=sum(1 for k in twice if storm.is_long(keys[k])),
                twice_keys=sorted(twice)[:20],
                twice_gap_s=[round(gaps[int(q * (len(gaps) - 1))], 2) for q in (0, 0.5, 1)]
                if gaps else [],
                stray=sum(1 for k in runs if k not in keys), last_done=last)


def disk_bytes(path: Path) -> int:
    """Bytes allocated below ``path`` (0 if it does not exist)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def clear_records(store_url: str) -> None:
    """Remove every record left by an earlier run."""
    from igneous.storage import open_store

    if store_url.startswith("file://"):
        shutil.rmtree(store_url[len("file://"):], ignore_errors=True)
        return
    store = open_store(store_url)
    store.delete(list(store.list()))


def measure_backend(spec: str, store_url: str, storm: Storm, env: dict, logs: Path) -> dict:
    """One run: insert, run the workers, audit the records."""
    clear_records(store_url)
    t0 = time.time()
    insert_records(spec, store_url, storm)
    inserted = time.time() - t0
    run = run_workers(spec, storm, env, logs)
    result = audit(store_url, storm)
    last_done = result.pop("last_done")
    span = max(last_done - run.start, 1e-9)
    row = dict(**asdict(storm), **result,
               insert_seconds=round(inserted, 1),
               seconds=round(span, 2), tasks_per_s=round(storm.tasks / span, 1),
               exit_after_last_done=round(max(run.exits) - last_done, 2),
               first_exit_after_last_done=round(min(run.exits) - last_done, 2),
               exit_codes=sorted(set(run.codes)), renew_errors=run.renew_errors,
               workers_cpu_sec=round(run.cpu_sec, 1),
               load_mean=round(sum(run.load) / max(1, len(run.load)), 1),
               load_max=round(max(run.load, default=0.0), 1),
               workers_peak_rss_mb=round(run.peak_rss / 2**20))
    if store_url.startswith("file://"):
        row["records_disk_mb"] = round(disk_bytes(Path(store_url[len("file://"):])) / 2**20, 1)
    if "://" not in spec:
        row["queue_disk_mb"] = round(disk_bytes(Path(spec)) / 2**20, 1)
    clear_records(store_url)  # now, not in the next run's measurement (10^5 files: ~minutes)
    return row


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
    ap.add_argument("--lease-sec", type=float, default=600.0, help="the workers' --lease-sec")
    ap.add_argument("--long-every", type=int, default=0,
                    help="every K-th task works --long-seconds (0: none)")
    ap.add_argument("--long-seconds", type=float, default=0.0,
                    help="work of a long task; longer than --lease-sec to need renewals")
    ap.add_argument("--records", choices=("file", "s3"), default="s3",
                    help="where each execution leaves its record (file: a local directory)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="kill workers still running this long after the start")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--work", type=Path, default=BENCH / "workers",
                    help="directory for the local queue, file records and worker logs")
    args = ap.parse_args(argv)
    storm = Storm(tasks=args.tasks, workers=args.workers, lease_sec=args.lease_sec,
                  task_seconds=args.task_seconds, long_every=args.long_every,
                  long_seconds=args.long_seconds, timeout=args.timeout)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with backends(args.backend or list(BACKENDS), work) as specs:
        if args.records == "s3":
            store_url = make_bucket("igneous-bench-workers")
        else:
            store_url = f"file://{work / 'records'}"
        env = dict(os.environ)
        for backend, spec in specs.items():
            for _ in range(args.repeat):
                row = dict(backend=backend, records=args.records,
                           **measure_backend(spec, store_url, storm, env, work / "logs" / backend))
                print(json.dumps(row), flush=True)
                rows.append(row)
    out = save_results(f"workers-{time.strftime('%Y%m%dT%H%M%S')}.json", rows)
    print(f"raw results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
