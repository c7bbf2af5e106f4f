"""Many `igneous execute -x` processes on one queue, with leases shorter than
some tasks: every task runs, none runs twice (the workers' renewals keep a
long task's lease; on SQS: no long task), and every worker exits by itself
once the queue is empty, on the local queue, PostgreSQL and SQS (moto).

Each execution of a ``record`` task leaves its own object; the audit counts
them per task (bench/workers.py runs the same storm at 16 workers x 10^5
tasks; figures in docs/scale.md).
"""

from __future__ import annotations

import os

import pytest

from bench import workers as bench

# a worker still running this long after starting is killed and the test fails:
# -x must notice the empty queue by itself
TIMEOUT = 120
LEASE = 2.0  # --lease-sec of the workers: renewed every LEASE / 3
LONG = 3.0  # a long task works past its lease: only renewals keep it from a second worker


def _check(spec: str, store_url: str, storm: bench.Storm, logs, *, once: bool = True) -> dict:
    """Run the storm: nothing lost; nothing run twice (``once``), or at least
    no long task (SQS: at-least-once delivery, and moto's receive can hand
    one message to two workers at the same moment, docs/scale.md)."""
    result = bench.measure_backend(spec, store_url, storm, dict(os.environ), logs)
    assert (result["lost"], result["stray"]) == (0, 0), result
    assert result["twice" if once else "twice_long"] == 0, result
    assert result["exit_codes"] == [0], result  # 0: exited by itself (a killed worker is -9)
    return result


def _spec(backend: str, tmp_path, request) -> str:
    if backend == "local":
        return str(tmp_path / "queue")
    if backend == "postgresql":
        return f"{request.getfixturevalue('pg_server')}?queue=many_{os.getpid()}"
    request.getfixturevalue("aws_env")
    return f"sqs://igneous-many-{os.getpid()}-{tmp_path.name[-12:].replace('_', '-')}"


@pytest.mark.parametrize("backend", ["local", "postgresql", "sqs"])
def test_leases_shorter_than_tasks_lose_and_repeat_nothing(backend, tmp_path, request):
    """3 workers with leases of 2 s; two tasks work 3 s (the first one, leased
    while the other workers are still busy, and the middle one)."""
    spec = _spec(backend, tmp_path, request)
    n = 30 if backend == "sqs" else 60  # moto answers SQS slowly
    storm = bench.Storm(tasks=n, workers=3, lease_sec=LEASE, long_every=n // 2, long_seconds=LONG,
                        timeout=TIMEOUT)
    _check(spec, f"file://{tmp_path}/records", storm, tmp_path / "logs", once=backend != "sqs")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "postgresql", "sqs"])
def test_sixteen_workers_with_records_on_s3(backend, tmp_path, request):
    spec = _spec(backend, tmp_path, request)
    request.getfixturevalue("aws_env")
    store_url = bench.make_bucket(f"many-{backend}-{os.getpid()}")
    storm = bench.Storm(tasks=400, workers=16, timeout=600)  # 600 s leases: records on S3 are the point
    _check(spec, store_url, storm, tmp_path / "logs")


# SQS on moto: each receive scans the whole queue and 16 workers' requests
# queue up behind each other, longer than a 2 s lease; 10^5 messages would
# take days there (docs/scale.md, "Many workers"). Its storm: 1,000 tasks,
# 30 s leases, two tasks of 45 s; nothing lost, duplicates allowed (SQS
# standard queues are at-least-once, and moto's receive is not atomic).
STORMS = {
    "local": bench.Storm(tasks=100_000, workers=16, lease_sec=2, long_every=1000, long_seconds=5,
                         timeout=3600),
    "postgresql": bench.Storm(tasks=100_000, workers=16, lease_sec=2, long_every=1000,
                              long_seconds=5, timeout=3600),
    "sqs": bench.Storm(tasks=1000, workers=16, lease_sec=30, long_every=500, long_seconds=45,
                       timeout=3600),
}
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "postgresql", "sqs"])
def test_storm_full(backend, tmp_path, request):
    """The full storm: 16 workers, leases shorter than every 1000th (SQS:
    500th) task, every execution audited."""
    spec = _spec(backend, tmp_path, request)
    _check(spec, f"file://{tmp_path}/records", STORMS[backend], tmp_path / "logs",
           once=backend != "sqs")
