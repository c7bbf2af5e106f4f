"""Bad input on python-task-queue queues: each bad task is dead-lettered with a
reason that names what is wrong, and the rest of the queue still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.compat.helpers import image, make_layer, mean_pool_2x2, read

ORIGINAL = "igneous.tasks.image.image"


def ptq_file(queue: Path, payload) -> str:
    """Add one task as python-task-queue writes it (queue/, movement/, insertions)."""
    ident = str(uuid.uuid4())
    (queue / "queue").mkdir(parents=True, exist_ok=True)
    (queue / "movement").mkdir(exist_ok=True)
    name = f"0--{ident}.json"
    body = payload if isinstance(payload, str) else json.dumps(
        {"payload": payload, "queueName": str(queue), "id": ident})
    (queue / "queue" / name).write_text(body)
    (queue / "movement" / ident).write_text(name + "\n")
    count = queue / "insertions"
    count.write_text(str(int(count.read_text() or 0) + 1 if count.exists() else 1))
    return ident


def downsample(path: str) -> list:
    """The original's DownsampleTask payload for a whole small layer."""
    return [[ORIGINAL, "DownsampleTask"], [], {
        "layer_path": path, "mip": 0, "shape": [64, 64, 16], "offset": [8, 4, 3],
        "axis": "z", "fill_missing": False, "sparse": False, "delete_black_uploads": False,
        "background_color": 0, "dest_path": None, "compress": None, "factor": None,
        "max_mips": 1, "method": 6, "codec_threads": 1}, -1]


def execute(queue: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "igneous", "execute", "-x", queue],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def dead_errors(queue: Path) -> list[str]:
    return sorted(p.read_text() for p in (queue / "igneous-dead").glob("*.error"))


@pytest.fixture
def layer(tmp_path) -> tuple[str, np.ndarray]:
    import igneous.task_creation as tc

    img = image(11)
    path = make_layer(tmp_path / "img", img)
    tc.create_downsampling_tasks(path, mip=0, num_mips=1)  # adds the mip 1 scale (as a planner would)
    return path, img


def test_bad_tasks_are_dead_lettered_and_the_rest_runs(tmp_path, layer):
    path, img = layer
    q = tmp_path / "queue"
    ptq_file(q, [[ORIGINAL, "FrobnicateTask"], [], {}, -1])
    ptq_file(q, {"class": "NoSuchClassTask", "x": 1})
    bad_kw = downsample(path)
    bad_kw[2]["frobnicate"] = True
    ptq_file(q, bad_kw)
    unsupported = downsample(path)
    unsupported[2]["axis"] = "x"
    ptq_file(q, unsupported)
    ptq_file(q, "{this is not json")
    ptq_file(q, [["igneous.tasks", "downsample"], "not a list", {}, -1])
    (q / "queue" / "stray-file.txt").write_text("left by hand")
    ptq_file(q, downsample(path))  # the one good task
    proc = execute(f"fq://{q}")
    assert proc.returncode == 0, proc.stderr
    errors = dead_errors(q)
    assert len(errors) == 7
    text = "\n".join(errors)
    assert "unknown task class 'FrobnicateTask'" in text and "DownsampleTask" in text
    assert "unknown task class 'NoSuchClassTask'" in text
    assert "unsupported keyword 'frobnicate'" in text
    assert "keyword axis='x' is not supported" in text
    assert "malformed task JSON" in text
    assert "malformed python-task-queue payload" in text
    assert "malformed FileQueue file name 'stray-file.txt'" in text
    assert not any((q / "queue").iterdir())
    assert (q / "completions").stat().st_size == 1
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))
    status = subprocess.run([sys.executable, "-m", "igneous", "queue", "status", f"fq://{q}"],
                            capture_output=True, text=True, check=True).stdout
    assert "Dead:       7" in status and "Completed:  1" in status


def test_missing_movement_folder_is_rebuilt(tmp_path, layer):
    path, img = layer
    q = tmp_path / "queue"
    ptq_file(q, downsample(path))
    for f in (q / "movement").iterdir():
        f.unlink()
    (q / "movement").rmdir()
    proc = execute(f"fq://{q}")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))


def test_malformed_sqs_message_is_dead_lettered(tmp_path, layer, aws_env, sqs_queue):
    import boto3

    path, img = layer
    name = sqs_queue[len("sqs://"):]
    sqs = boto3.client("sqs", endpoint_url=aws_env)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{broken")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"payload": downsample(path),
                                                           "queueName": name}))
    proc = execute(sqs_queue)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))
    dead_url = sqs.get_queue_url(QueueName=f"{name}-dead")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=dead_url, MaxNumberOfMessages=10,
                              MessageAttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in got] == ["{broken"]
    assert "malformed task JSON" in json.dumps(got[0].get("MessageAttributes", {}))


def test_ptq_queue_without_python_task_queue_installed(tmp_path, layer):
    """Our workers read and write python-task-queue's FileQueue layout
    themselves: with `taskqueue` unimportable the queue still runs."""
    path, img = layer
    q = tmp_path / "queue"
    ptq_file(q, downsample(path))
    block = tmp_path / "block"
    block.mkdir()
    (block / "taskqueue.py").write_text("raise ImportError('python-task-queue is not installed')\n")
    proc = execute(f"fq://{q}", env={"PYTHONPATH": str(block)})
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))
