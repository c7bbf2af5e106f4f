"""Permanent storage faults: a missing object or bucket, an unreachable
endpoint; and a full disk under the destination or the queue.

Each fault must give one line naming what failed (and, for a task, which
task), dead-letter the task with that cause, and leave nothing half-written
where a reader would trust it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import CloudVolume

from tests.fault_answers import answering
from tests.test_pipeline import tree
from tests.test_worker import counts
from tests.volumes import make_layer

IMAGE = np.random.RandomState(7).randint(0, 255, (64, 64, 16)).astype(np.uint8)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    line = proc.stderr.strip()
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


def s3_source(igneous, tmp_path: Path, bucket) -> str:
    """A local image copied to ``s3://BUCKET/src`` (chunks 16x16x8: 64 objects)."""
    local = make_layer(str(tmp_path / "local"), IMAGE, chunk=(16, 16, 8))
    url = f"{bucket.url}/src"
    igneous("image", "xfer", local, url, "--skip-downsample", check=True)
    return url


def test_missing_object_mid_run_is_dead_lettered(igneous, tmp_path, s3_bucket):
    """A chunk deleted after planning: its task fails with the object's name,
    is dead-lettered with that cause; the other tasks finish; the failed
    task's block is not written (no partial output a reader would trust)."""
    import boto3

    src = s3_source(igneous, tmp_path, s3_bucket)
    dest, q = tmp_path / "dest", tmp_path / "q"
    igneous("image", "xfer", src, dest, "--queue", q, "--shape", "16,16,8", "--skip-downsample",
            check=True)
    total = counts(q).pending
    victim = "src/4_4_40/16-32_16-32_0-8"
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket.name)["Contents"]]
    (key,) = [k for k in keys if k.startswith(victim)]
    s3.delete_object(Bucket=s3_bucket.name, Key=key)

    run = igneous("execute", "-x", "--max-attempts", 2, q, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    failures = [x for x in run.stderr.splitlines() if x.startswith("igneous: task")]
    assert failures and all("16-32_16-32_0-8" in x for x in failures), run.stderr
    assert all("transfer@[16, 16, 0]" in x for x in failures), run.stderr
    status = json.loads(igneous("queue", "status", "--json", q, check=True).stdout)
    assert (status["pending"], status["leased"], status["dead"]) == (0, 0, 1)
    assert status["completed"] == total - 1
    (letter,) = status["dead_letters"]
    assert "16-32_16-32_0-8" in letter["error"]
    assert json.loads(letter["payload"])["kwargs"]["offset"] == [16, 16, 0]
    written = {p.name for p in (dest / "4_4_40").iterdir()}
    assert not any(name.startswith("16-32_16-32_0-8") for name in written)
    assert len(written) == total - 1


ENDPOINT_ENV = {"s3": "AWS_ENDPOINT_URL", "gs": "STORAGE_EMULATOR_HOST"}


@contextmanager
def broken(fault: str, store: str, bucket, closed_port: int):
    """(path of a layer in ``bucket``'s store, extra environment) for ``fault``."""
    env_name = ENDPOINT_ENV[store]
    if fault == "denied":  # every request refused with 403 (bad or revoked credentials)
        with answering(bucket.endpoint, flavor="s3" if store == "s3" else "gcs",
                       refuse=True) as (url, _):
            yield f"{bucket.url}/layer", {env_name: url}
        return
    yield {
        "missing-bucket": f"{store}://igneous-no-such-bucket-{uuid.uuid4().hex[:8]}/layer",
        "missing-layer": f"{bucket.url}/nothing-here",
        "unreachable": f"{bucket.url}/layer",
    }[fault], ({env_name: f"http://127.0.0.1:{closed_port}"} if fault == "unreachable" else {})


def cli(*args, env: dict | None = None) -> tuple[int, str]:
    """Run ``igneous ARGS`` in this process (click's runner, environment
    ``env`` added for the call); (exit code, stderr). A crash fails the test."""
    from click.testing import CliRunner

    from igneous.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def refused(args, env) -> str:
    """The one line a refused command printed."""
    code, err = cli(*args, env=env)
    line = err.strip()
    assert code != 0, err
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


@pytest.mark.parametrize("store", ["s3", "gs"])
@pytest.mark.parametrize("fault", ["missing-bucket", "missing-layer", "unreachable", "denied"])
def test_planning_against_a_broken_store_enqueues_nothing(tmp_path, request, closed_port,
                                                          fault, store):
    """As a source and as a destination, a store that cannot be used is
    refused in one line before anything is queued or written, at once (a
    quick probe: no minute of client retries)."""
    bucket = request.getfixturevalue("s3_bucket" if store == "s3" else "gcs_bucket")
    src = make_layer(str(tmp_path / "local"), IMAGE, chunk=(16, 16, 8))
    before = tree(tmp_path / "local")
    q = tmp_path / "q"
    with broken(fault, store, bucket, closed_port) as (target, env):
        line = refused(("image", "downsample", target, "--queue", q), env)
        name = target.split("//")[-1].split("/")[0]
        expect = {"missing-bucket": "does not exist", "missing-layer": "no layer",
                  "unreachable": "cannot reach", "denied": "refused"}[fault]
        assert expect in line and (name in line or fault == "missing-layer"), line
        assert not q.exists()
        if fault != "missing-layer":  # (a missing layer is a fine destination)
            line = refused(("image", "xfer", src, target, "--queue", q), env)
            assert expect in line and name in line, line
            assert not q.exists()
    assert tree(tmp_path / "local") == before


@pytest.mark.parametrize("store", ["s3", "gs"])
def test_throttling_is_retried_not_failed(tmp_path, request, store):
    """503 SlowDown answers to the first requests (the probe's among them) are
    retried with back-off: the transfer succeeds and equals the source."""
    bucket = request.getfixturevalue("s3_bucket" if store == "s3" else "gcs_bucket")
    src = make_layer(str(tmp_path / "local"), IMAGE, chunk=(16, 16, 8))
    dest = f"{bucket.url}/throttled"
    with answering(bucket.endpoint, flavor="s3" if store == "s3" else "gcs",
                   throttle=3) as (url, tally):
        code, err = cli("image", "xfer", src, dest, "--skip-downsample",
                        env={ENDPOINT_ENV[store]: url})
        assert code == 0, err
    assert tally["answered"] == 3 and tally["forwarded"] > 0
    got = np.asarray(CloudVolume(dest, progress=False)[:, :, :])[..., 0]
    assert np.array_equal(got, IMAGE)


# -- full disk ---------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs mounted for the test (root only), unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> Path:
    """Fill ``mnt`` until about ``leave`` bytes are free; return the filler."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_full_disk_mid_run_then_resume(igneous, tmp_path, small_disk):
    """The destination's disk fills mid-run: the failing tasks say so in one
    line, no partial chunk is visible; after freeing space the same command
    resumes and the output equals an uninterrupted run."""
    data = np.random.RandomState(3).randint(0, 255, (128, 128, 32)).astype(np.uint8)
    src = make_layer(str(tmp_path / "src"), data, chunk=(32, 32, 16))
    whole = tmp_path / "whole"
    igneous("image", "xfer", src, whole, "--skip-downsample", "--compress", "none", check=True)

    dest, q = small_disk / "dest", tmp_path / "q"
    filler = _fill(small_disk, 200_000)  # room for about half of the 512 KB of chunks
    args = ("image", "xfer", src, dest, "--skip-downsample", "--compress", "none",
            "--shape", "32,32,16", "--queue", q)
    igneous(*args, check=True)
    run = igneous("execute", "-x", "--max-attempts", 1, q, timeout=120)
    assert "No space left on device" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert counts(q).dead > 0
    # no partial chunk: every chunk file present has its full size
    chunk_bytes = 32 * 32 * 16
    for p in (dest / "4_4_40").iterdir():
        assert p.suffix == ".tmp" or p.stat().st_size == chunk_bytes, p

    filler.unlink()
    igneous("queue", "purge", "-y", q, check=True)
    igneous(*args, check=True)  # the same command again
    igneous("execute", "-x", q, check=True, timeout=120)
    got = {k: v for k, v in tree(dest).items() if not k.endswith(".tmp")}
    assert got == tree(whole)


def test_queue_on_a_full_disk_loses_and_duplicates_nothing(igneous, tmp_path, small_disk):
    """The queue's SQLite file on a disk that fills: inserting fails cleanly
    (all or nothing per batch), and running what was inserted completes each
    task exactly once."""
    from igneous.queues.local import LocalQueue
    from igneous.tasks import Task

    marks = tmp_path / "marks"
    marks.mkdir()
    q = small_disk / "q"
    _fill(small_disk, 400_000)
    inserted = 0
    error = None
    with LocalQueue(str(q)) as queue:
        for batch in range(200):  # ~3 MB of payloads: the disk fills part way
            pad = "x" * 100
            tasks = [Task("touch", {"path": str(marks / f"{batch}-{i}-{pad}")}) for i in range(100)]
            try:
                inserted += queue.insert(tasks)
            except Exception as e:  # noqa: BLE001 - the disk-full error, whatever its type
                error = e
                break
    assert error is not None, "the disk never filled"
    assert "full" in str(error).lower() or "space" in str(error).lower(), error
    c = counts(q)
    assert c.pending == inserted  # every batch is all or nothing
    # workers on the full disk: one line, nothing lost
    (small_disk / "filler").unlink()
    _fill(small_disk, 0)
    run = igneous("-p", 2, "execute", "-x", q, timeout=300)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    assert "full" in run.stderr or "I/O" in run.stderr, run.stderr
    (small_disk / "filler").unlink()
    # tasks the failed workers held could not be given back on the full disk
    # (their leases run 600 s); what the message says to do once none runs
    assert igneous("queue", "release", q).returncode == 0
    run = igneous("-p", 2, "execute", "-x", q, timeout=300)
    assert run.returncode == 0, run.stderr
    c = counts(q)
    assert (c.pending, c.leased, c.dead, c.completed) == (0, 0, 0, inserted)
    assert len(list(marks.iterdir())) == inserted


# -- denied access ------------------------------------------------------------------

@pytest.fixture
def iam_s3(aws_env, tmp_path, monkeypatch):
    """A second moto server on 127.0.0.1 that enforces IAM: a ``writer`` who
    may do anything and a ``nobody`` who may do nothing. Yields (endpoint,
    writer env, nobody env); stopped by PID."""
    import sys

    import boto3

    from tests.servers import MOTO_READY, background_server, free_port

    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # the first 5 requests (the IAM set-up below) are free; all later ones are checked
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "5")
    with background_server(argv, f"http://127.0.0.1:{port}", MOTO_READY,
                           tmp_path / "moto-iam.log", "moto_server (IAM)") as url:
        monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
        iam = boto3.client("iam", endpoint_url=url)
        keys = {}
        for user in ("writer", "nobody"):
            iam.create_user(UserName=user)
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        iam.put_user_policy(UserName="writer", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))

        def creds(user: str) -> dict:
            return {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": keys[user]["AccessKeyId"],
                    "AWS_SECRET_ACCESS_KEY": keys[user]["SecretAccessKey"],
                    "AWS_SESSION_TOKEN": ""}

        yield url, creds("writer"), creds("nobody")


def test_denied_access_at_planning_and_mid_run(igneous, tmp_path, iam_s3):
    import boto3

    url, writer, nobody = iam_s3
    boto3.client("s3", endpoint_url=url, aws_access_key_id=writer["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=writer["AWS_SECRET_ACCESS_KEY"]).create_bucket(
        Bucket="denied-test")
    local = make_layer(str(tmp_path / "local"), IMAGE, chunk=(16, 16, 8))
    layer = "s3://denied-test/layer"
    igneous("image", "xfer", local, layer, "--skip-downsample", env=writer, check=True)

    # planning as nobody: one line, nothing queued
    q = tmp_path / "q"
    line = _one_line(igneous("image", "downsample", layer, "--queue", q, env=nobody, timeout=240))
    assert "denied" in line.lower() or "forbidden" in line.lower() or "403" in line, line
    assert not q.exists()

    # planned as the writer, run as nobody: every task dead-lettered with the cause
    dest = tmp_path / "dest"
    igneous("image", "xfer", layer, dest, "--queue", q, "--shape", "32,32,16",
            "--skip-downsample", env=writer, check=True)
    total = counts(q).pending
    run = igneous("execute", "-x", "--max-attempts", 1, q, env=nobody, timeout=600)
    assert "Traceback" not in run.stderr
    status = json.loads(igneous("queue", "status", "--json", "--dead", 100, q,
                                check=True).stdout)
    assert (status["pending"], status["leased"], status["dead"]) == (0, 0, total)
    for letter in status["dead_letters"]:
        assert "denied" in letter["error"].lower() or "403" in letter["error"], letter["error"]
    assert not (dest / "4_4_40").exists() or not any((dest / "4_4_40").iterdir())
