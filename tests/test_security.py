"""Security: servers listen on loopback only; credentials never leak into
logs, errors, queue payloads or outputs; queue messages stay small (large
label lists go to storage, the payload carries a pointer).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import boto3
import numpy as np
import psutil
import pytest

from igneous.tasks import ARG_FILE
from tests.test_worker import counts
from tests.volumes import make_layer

SQS_LIMIT = 256 * 1024


def listening(pid: int | None = None, port: int | None = None) -> list[str]:
    """Addresses of the listening TCP sockets of process ``pid`` (and its
    children), or of whatever listens on ``port``."""
    if pid is not None:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        conns = [c for p in procs for c in p.net_connections(kind="inet")]
    else:
        conns = psutil.net_connections(kind="inet")
    return [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN
            and (port is None or c.laddr.port == port)]


def assert_loopback(addresses: list[str]) -> None:
    assert addresses, "nothing is listening"
    for ip in addresses:
        assert ipaddress.ip_address(ip).is_loopback, f"listening on {ip}"


def test_view_listens_on_loopback_only(tmp_path):
    path = make_layer(str(tmp_path / "img"), np.zeros((32, 32, 8), np.uint8))
    proc = subprocess.Popen([sys.executable, "-m", "igneous", "view", path, "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http"), url
        deadline = time.monotonic() + 20
        while not listening(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        addresses = listening(proc.pid)
        assert_loopback(addresses)
        assert ipaddress.ip_address(urlparse(url).hostname).is_loopback, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_test_servers_listen_on_loopback_only(moto_server, request):
    assert_loopback(listening(port=urlparse(moto_server).port))
    try:
        pg = request.getfixturevalue("pg_server")
    except pytest.skip.Exception:
        return
    assert_loopback(listening(port=urlparse(pg).port))


# -- credentials ----------------------------------------------------------------

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAIGNEOUSFAKEKEY42",
    "AWS_SECRET_ACCESS_KEY": "igneousFakeSecret/42+abcdefghijklmnopqrstu",
    "AWS_SESSION_TOKEN": "igneousFakeSessionToken42xyzzy",
}
FILE_SECRET = "igneousFakeFileSecret/43+zyxwvutsrqponmlkjih"
CV_SECRET = "igneousFakeCloudVolumeSecret/44+qwertyuiop"


def _plant(monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    creds = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    creds.parent.mkdir(parents=True, exist_ok=True)
    creds.write_text(f"[default]\naws_access_key_id = AKIAIGNEOUSFILEKEY43\n"
                     f"aws_secret_access_key = {FILE_SECRET}\n")
    cv = Path(os.environ["CLOUD_VOLUME_DIR"]) / "secrets"
    cv.mkdir(parents=True, exist_ok=True)
    (cv / "aws-secret.json").write_text(json.dumps(
        {"AWS_ACCESS_KEY_ID": "AKIAIGNEOUSCVKEY44", "AWS_SECRET_ACCESS_KEY": CV_SECRET}))


def _leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf8", "replace")
    values = [*SECRETS.values(), FILE_SECRET, CV_SECRET, "AKIAIGNEOUSFILEKEY43", "AKIAIGNEOUSCVKEY44"]
    return [v for v in values if v in text]


def test_no_credentials_in_logs_errors_payloads_or_outputs(igneous, tmp_path, s3_bucket,
                                                           monkeypatch):
    """Fake secrets in the environment, a credentials file and CloudVolume's
    secrets file; a succeeding and several failing S3 workflows; then every
    line printed, every queue database and every file written is searched."""
    _plant(monkeypatch)
    work = tmp_path / "work"
    src = make_layer(str(work / "src"), np.random.RandomState(1).randint(
        0, 255, (64, 64, 16)).astype(np.uint8), chunk=(16, 16, 8))
    s3 = f"{s3_bucket.url}/layer"
    runs = [
        igneous("image", "xfer", src, s3, "--queue", work / "q1", "--skip-downsample"),
        igneous("-p", 2, "execute", "-x", work / "q1"),
        igneous("image", "downsample", s3, "--queue", work / "q2", "--num-mips", 1),
        igneous("queue", "status", "--json", work / "q2"),
    ]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    # failures: a missing layer, a missing bucket, a task whose chunks vanished
    runs.append(igneous("image", "downsample", f"{s3_bucket.url}/missing", "--queue", work / "q3"))
    runs.append(igneous("image", "xfer", src, "s3://igneous-no-such-bucket-42/x", "--queue",
                        work / "q4"))
    client = boto3.client("s3")
    for obj in client.list_objects_v2(Bucket=s3_bucket.name, Prefix="layer/4_4_40/")["Contents"]:
        client.delete_object(Bucket=s3_bucket.name, Key=obj["Key"])
    runs.append(igneous("execute", "-x", "--max-attempts", 1, work / "q2",
                        env={"IGNEOUS_TRACEBACK": "1"}))
    runs.append(igneous("queue", "status", "--json", "--dead", 100, work / "q2"))
    assert sum(r.returncode != 0 for r in runs) >= 2
    assert counts(work / "q2").dead > 0  # the failing tasks really failed
    for r in runs:
        assert not _leaks(r.stdout) and not _leaks(r.stderr), (r.args, r.stderr)
    searched = 0
    for p in work.rglob("*"):
        if p.is_file():
            assert not _leaks(p.read_bytes()), p
            searched += 1
    assert searched > 10
    for key in (o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]):
        body = client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
        assert not _leaks(body), key


# -- payload sizes ----------------------------------------------------------------

@pytest.fixture
def seg(tmp_path) -> str:
    labels = np.zeros((64, 64, 16), np.uint32)
    labels[4:20, 4:20, 2:10] = 7
    labels[30:50, 30:60, 4:14] = 9
    return make_layer(str(tmp_path / "seg"), labels, chunk=(32, 32, 16),
                      layer_type="segmentation")


MANY = [int(x) for x in range(10**6, 10**6 + 40_000)]  # ~320 KB as JSON


@pytest.mark.parametrize("planner", ["create_meshing_tasks", "create_skeletonizing_tasks"])
def test_large_label_lists_go_to_storage(seg, planner, sqs_queue):
    import igneous.task_creation as tc
    from igneous.queues import open_queue

    plan = getattr(tc, planner)(seg, shape=(32, 32, 16), object_ids=MANY + [7])
    payloads = [t.to_json() for t in plan]
    assert len(payloads) == 4
    assert max(len(p) for p in payloads) < 4096  # a pointer, not the list
    ref = json.loads(payloads[0])["kwargs"]["object_ids"]
    assert set(ref) == {ARG_FILE}
    q = open_queue(sqs_queue)
    assert q.insert(plan) == 4  # SQS takes them


def test_large_label_list_meshes_the_same(seg, tmp_path):
    """Meshing with a 40,000-label list (stored, then read back by the task)
    writes the same fragments as with the short list of the labels present."""
    import igneous.task_creation as tc
    from igneous.worker import run_local

    out = {}
    for name, ids in (("short", [7]), ("long", MANY + [7])):
        layer = tmp_path / name
        shutil.copytree(Path(seg[len("file://"):]), layer)
        run_local([tc.create_meshing_tasks(f"file://{layer}", shape=(32, 32, 16),
                                           object_ids=ids, spatial_index=False)], progress=False)
        mesh = layer / json.loads((layer / "info").read_text())["mesh"]
        out[name] = {p.name: p.read_bytes() for p in mesh.iterdir() if p.is_file()}
    assert out["long"] == out["short"] and any(k.startswith("7:") for k in out["short"])


def test_sqs_refuses_an_oversized_payload(sqs_queue):
    from igneous.errors import QueueError
    from igneous.queues import open_queue
    from igneous.tasks import Task

    with pytest.raises(QueueError, match="256 KB"):
        open_queue(sqs_queue).insert([Task("noop", {"blob": "x" * SQS_LIMIT})])
