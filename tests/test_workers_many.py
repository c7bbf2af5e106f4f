"""Many `igneous execute -x` processes on one queue: every task runs exactly
once (leases far outlast the run) and every worker exits by itself once the
queue is empty, on the local queue, PostgreSQL and SQS (moto).

Each execution of a ``record`` task leaves its own object; the audit counts
them per task (bench/workers.py measures the same at 16 workers).
"""

from __future__ import annotations

import os

import pytest

from bench import workers as bench

# a worker still running this long after starting is killed and the test fails:
# -x must notice the empty queue by itself (the figures are in docs/scale.md)
TIMEOUT = 120


def _check(spec: str, store_url: str, n: int, workers: int) -> None:
    storm = bench.Storm(tasks=n, workers=workers, timeout=TIMEOUT)
    result = bench.measure_backend(spec, store_url, storm, dict(os.environ), logs)
    assert result["lost"] == 0 and result["twice"] == 0 and result["stray"] == 0, result
    assert result["exit_codes"] == [0], result  # 0: exited by itself (a killed worker is -9)


def _spec(backend: str, tmp_path, request) -> str:
    if backend == "local":
        return str(tmp_path / "queue")
    if backend == "postgresql":
        return f"{request.getfixturevalue('pg_server')}?queue=many_{os.getpid()}"
    request.getfixturevalue("aws_env")
    return f"sqs://igneous-many-{os.getpid()}-{tmp_path.name[-12:].replace('_', '-')}"


@pytest.mark.parametrize("backend", ["local", "postgresql", "sqs"])
def test_each_task_runs_once_and_workers_exit(backend, tmp_path, request):
    spec = _spec(backend, tmp_path, request)
    n = 20 if backend == "sqs" else 60  # moto answers SQS slowly
    _check(spec, f"file://{tmp_path}/records", n, workers=3)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "postgresql", "sqs"])
def test_sixteen_workers_with_records_on_s3(backend, tmp_path, request):
    spec = _spec(backend, tmp_path, request)
    request.getfixturevalue("aws_env")
    store_url = bench.make_bucket(f"many-{backend}-{os.getpid()}")
    _check(spec, store_url, 400, workers=16)
