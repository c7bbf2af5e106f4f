"""Transient storage faults survived: every workflow with its source and
destination behind the fault proxy (tests/fault_proxy.py), on S3 (moto) and
on GCS (the emulator), gives output byte-identical to a clean run; failed
requests are retried, and counted (``Counts.retries``).

Each case copies the same small layers into two roots of one bucket, runs the
workflow in ``clean/`` with the proxy passing everything through, then in
``faulty/`` with the proxy injecting 500s, 503 SlowDowns, connection resets
and truncated bodies at a set rate until its bounded total is spent; then
every object under the two roots is compared (bytes and Content-Encoding).

CI runs one workflow (and every fault kind on single requests, both clouds);
``-m slow`` runs every workflow on both clouds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from igneous.storage import Stored, open_store, totals
from tests.fault_proxy import KINDS, FaultProxy
from tests.servers import Bucket
from tests.test_kills import WORKFLOWS, Step
from tests.test_worker import counts
from tests.volumes import make_layer

RATE = 0.08  # chance a request is faulted ...
MAX_FAULTS = 12  # ... until this many were injected in a run
ENDPOINT_VARIABLE = {"s3": "AWS_ENDPOINT_URL", "gcs": "STORAGE_EMULATOR_HOST"}
CI_CASES = [("s3", "xfer-downsample")]  # the rest (~70 s each) under -m slow


class Proxied(NamedTuple):
    """A fresh bucket whose every request (this process and its children) goes
    through ``proxy``."""

    proxy: FaultProxy
    bucket: Bucket


def behind_proxy(bucket: Bucket, flavor: str, monkeypatch: pytest.MonkeyPatch,
                 seed: int = 0) -> Iterator[Proxied]:
    with FaultProxy(bucket.endpoint, flavor=flavor, seed=seed) as proxy:
        monkeypatch.setenv(ENDPOINT_VARIABLE[flavor], proxy.url)
        from cloudfiles.interfaces import reset_connection_pools

        reset_connection_pools()  # clients made before read the emulator's address
        yield Proxied(proxy, bucket)
    reset_connection_pools()


@pytest.fixture
def s3_proxy(s3_bucket, monkeypatch) -> Iterator[Proxied]:
    """A fresh S3 bucket on moto behind a fault proxy (passing everything until armed)."""
    yield from behind_proxy(s3_bucket, "s3", monkeypatch)


@pytest.fixture
def gcs_proxy(gcs_bucket, monkeypatch) -> Iterator[Proxied]:
    """A fresh GCS bucket on the emulator behind a fault proxy."""
    yield from behind_proxy(gcs_bucket, "gcs", monkeypatch)


@pytest.fixture
def proxied(request, cloud: str) -> Proxied:
    return request.getfixturevalue(f"{cloud}_proxy")


# -- the layers and the runs ------------------------------------------------------

@pytest.fixture(scope="module")
def local_layers(tmp_path_factory) -> Path:
    """Small ``seg`` (segmentation) and ``img`` (image) layers on local disk."""
    from igneous.sample import smooth_image, synthetic_segmentation

    root = tmp_path_factory.mktemp("layers")
    make_layer(str(root / "seg"), synthetic_segmentation((96, 96, 32), seed=3).astype(np.uint32),
               chunk=(32, 32, 16), layer_type="segmentation", resolution=(16, 16, 40))
    make_layer(str(root / "img"), smooth_image((96, 96, 32), seed=4), chunk=(16, 16, 8))
    return root


def copy_layers(local: Path, url: str) -> None:
    """``local``'s seg and img layers, object for object, below ``url``."""
    for name in ("seg", "img"):
        src, dest = open_store(str(local / name)), open_store(f"{url}/{name}")
        dest.put_stored_many((key, stored) for key, stored in src.get_stored_many(src.list())
                             if stored is not None)


def objects(url: str) -> dict[str, Stored | None]:
    store = open_store(url)
    return dict(store.get_stored_many(sorted(store.list())))


def igneous(*args: object) -> None:
    proc = subprocess.run([sys.executable, "-m", "igneous", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"igneous {' '.join(map(str, args))}: {proc.stderr[-3000:]}"


def run_workflow(root: str, steps: list[Step], queue: Path) -> None:
    for step in steps:
        args = [a.format(seg=f"{root}/seg", img=f"{root}/img", out=f"{root}/out")
                for a in step.args]
        if not step.queued:
            igneous(*args)
            continue
        igneous(*args, "--queue", queue)
        igneous("-p", 2, "execute", "-x", "-q", queue)
        c = counts(queue)
        if (c.pending, c.leased, c.dead) != (0, 0, 0):
            status = subprocess.run([sys.executable, "-m", "igneous", "queue", "status", queue],
                                    capture_output=True, text=True, timeout=60)
            raise AssertionError(f"{' '.join(args)}: {c}\n{status.stdout[-3000:]}")


def check_survives(proxied: Proxied, local: Path, tmp_path: Path, name: str) -> None:
    proxy, bucket = proxied
    clean, faulty = f"{bucket.url}/clean", f"{bucket.url}/faulty"
    copy_layers(local, clean)
    copy_layers(local, faulty)
    run_workflow(clean, WORKFLOWS[name], tmp_path / "clean-queue")
    assert proxy.counts()["faults_total"] == 0

    proxy.arm(rate=RATE, max_faults=MAX_FAULTS)
    run_workflow(faulty, WORKFLOWS[name], tmp_path / "faulty-queue")
    proxy.disarm()
    injected = proxy.counts()["faults"]
    assert sum(injected.values()) > 0, "no fault was injected"

    expected, got = objects(clean), objects(faulty)
    assert sorted(got) == sorted(expected)
    differ = [k for k in expected if got[k] != expected[k]]
    assert not differ, f"{len(differ)} objects differ after faults {injected}: {differ[:5]}"


@pytest.mark.parametrize("cloud,name", CI_CASES)
def test_workflow_survives_transient_faults(proxied, local_layers, tmp_path, name):
    check_survives(proxied, local_layers, tmp_path, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WORKFLOWS))
@pytest.mark.parametrize("cloud", ["s3", "gcs"])
def test_every_workflow_survives_transient_faults(proxied, local_layers, tmp_path, name):
    if (proxied.proxy.flavor, name) in CI_CASES:
        pytest.skip("runs in CI (test_workflow_survives_transient_faults)")
    check_survives(proxied, local_layers, tmp_path, name)


# -- each fault kind, retried and counted -------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cloud", ["s3", "gcs"])
def test_each_fault_is_retried_and_counted(proxied, kind):
    """Every fault kind on every request of a batch: the objects come back
    whole (a truncated body is never taken as data), each fault counted once
    as a retry; the same work without faults counts no retry."""
    proxy, bucket = proxied
    proxy.kinds = (kind,)
    store = open_store(f"{bucket.url}/objects")
    want = {f"k{i}": bytes(range(256)) * (i + 1) for i in range(6)}

    before = totals()
    store.put_many(want.items())
    assert dict(store.get_many(sorted(want))) == want
    clean = totals() - before
    assert clean.retries == 0 and clean.writes == 6 and clean.reads == 6

    proxy.arm(rate=1.0, max_faults=4)  # the first four requests fail once each
    before = totals()
    store.put_many((k, v[::-1]) for k, v in want.items())
    assert dict(store.get_many(sorted(want))) == {k: v[::-1] for k, v in want.items()}
    used = totals() - before
    assert proxy.counts()["faults"][kind] >= 1
    # every fault made a retry (a heavily loaded machine may add a timed-out attempt)
    assert proxy.counts()["faults_total"] == 4 and used.retries >= 4, used
    assert used.writes == 6 and used.reads == 6  # a retried request is billed once here


def test_proxy_process_counts_billing_classes(s3_bucket, tmp_path):
    """The proxy as a process (how bench/ runs it), stopped by PID: requests
    made with boto3 are counted in the classes they are billed as; its faults
    stop by themselves at the bounded total."""
    import json

    import boto3
    from botocore.config import Config

    from tests.fault_proxy import control
    from tests.servers import answers_at, background_server, free_port

    port = free_port()
    argv = [sys.executable, "-m", "tests.fault_proxy", s3_bucket.endpoint, "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with background_server(argv, url, answers_at("/__proxy__/counts"), tmp_path / "proxy.log",
                           "fault proxy"):
        s3 = boto3.client("s3", endpoint_url=url, config=Config(retries={"total_max_attempts": 1}))
        name = s3_bucket.name
        for i in range(3):
            s3.put_object(Bucket=name, Key=f"a/{i}", Body=b"x" * i)
        s3.get_object(Bucket=name, Key="a/1")["Body"].read()
        s3.head_object(Bucket=name, Key="a/2")
        assert len(s3.list_objects_v2(Bucket=name, Prefix="a/")["Contents"]) == 3
        s3.delete_object(Bucket=name, Key="a/0")
        s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "a/1"}, {"Key": "a/2"}]})
        got = control(url, "counts")
        assert {c: got[c] for c in ("read", "write", "list", "delete")} == \
            {"read": 2, "write": 3, "list": 1, "delete": 2}, json.dumps(got)

        control(url, "faults", {"rate": 1.0, "max_faults": 2})
        failed = 0
        for _ in range(4):
            try:
                s3.head_object(Bucket=name, Key="missing")
            except Exception as err:  # a fault (5xx or a reset), or the real 404
                failed += "404" not in str(err)
        assert failed == 2 and control(url, "counts")["faults_total"] == 2
