"""Many `igneous execute -x` processes on one queue, with leases shorter than
some tasks: every task runs, none runs twice (the workers' renewals keep a
long task's lease), and every worker exits by itself once the queue is
empty, on the local queue, PostgreSQL and SQS (moto).

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


def _check(spec: str, store_url: str, storm: bench.Storm, logs) -> dict:
    result = bench.measure_backend(spec, store_url, storm, dict(os.environ), logs)
    assert (result["lost"], result["twice"], result["stray"]) == (0, 0, 0), result
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
    _check(spec, f"file://{tmp_path}/records", storm, tmp_path / "logs")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "postgresql", "sqs"])
def test_sixteen_workers_with_records_on_s3(backend, tmp_path, request):
    spec = _spec(backend, tmp_path, request)
    request.getfixturevalue("aws_env")
    store_url = bench.make_bucket(f"many-{backend}-{os.getpid()}")
    storm = bench.Storm(tasks=400, workers=16, lease_sec=LEASE, long_every=50, long_seconds=LONG,
                        timeout=600)
    _check(spec, store_url, storm, tmp_path / "logs")


# SQS on moto: each receive scans the whole queue, so 10^5 messages do not
# finish in hours there (docs/scale.md, "Many workers"); the largest run that
# fits in about half an hour
STORM_TASKS = {"local": 100_000, "postgresql": 100_000, "sqs": 2_000}


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(STORM_TASKS))
def test_storm_full(backend, tmp_path, request):
    """The full storm: 16 workers, leases of 2 s, every 1000th task working 5 s."""
    spec = _spec(backend, tmp_path, request)
    storm = bench.Storm(tasks=STORM_TASKS[backend], workers=16, lease_sec=LEASE, long_every=1000,
                        long_seconds=5.0, timeout=3600)
    _check(spec, f"file://{tmp_path}/records", storm, tmp_path / "logs")
