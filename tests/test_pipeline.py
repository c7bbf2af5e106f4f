"""`igneous run PIPELINE`: whole workflows through one durable queue.

Checks: the steps' results against numpy; a run interrupted by SIGKILL and
resumed writes exactly the same files as an uninterrupted one; bad files are
refused with the line at fault before anything is enqueued; a failed step
holds the later ones back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import CloudVolume

from igneous.queues import open_queue
from tests.volumes import average, make_layer

PIPELINE = """\
source = "./raw"

[[steps]]
step = "transfer"
dest_layer_path = "./out"
chunk_size = [16, 16, 8]
skip_downsamples = true

[[steps]]
step = "downsample"
num_mips = 2
"""

PIPELINE_YAML = """\
source: ./raw
steps:
  - step: transfer
    dest_layer_path: ./out
    chunk_size: [16, 16, 8]
    skip_downsamples: true
  - step: downsample
    num_mips: 2
"""


def image(shape=(99, 70, 19), seed=5) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 255, shape).astype(np.uint8)


def setup_dir(root: Path, text: str, name: str = "p.toml", data=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    make_layer(str(root / "raw"), image() if data is None else data, offset=(3, 5, 7),
               resolution=(4, 4, 40), chunk=(32, 32, 8))
    (root / name).write_text(text)
    return root / name


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name,text", [("p.toml", PIPELINE), ("p.yaml", PIPELINE_YAML)])
def test_pipeline_runs_steps_in_order(tmp_path, igneous, name, text):
    data = image()
    pfile = setup_dir(tmp_path, text, name, data)
    proc = igneous("-p", "2", "run", pfile, check=True)
    assert "Pipeline done" in proc.stderr
    out = f"file://{tmp_path}/out"
    got = CloudVolume(out, mip=0)[:, :, :][..., 0]
    np.testing.assert_array_equal(got, data)
    # offset 3,5,7 is not aligned for two mips at once: two passes, each from the mip below
    expected, offset = data, (3, 5, 7)
    for mip in (1, 2):
        expected, offset = average(expected, offset, (2, 2, 1), 1)
        np.testing.assert_array_equal(CloudVolume(out, mip=mip)[:, :, :][..., 0], expected)
    status = igneous("queue", "status", tmp_path / "p.queue", check=True).stdout
    assert "stage 0 transfer: 0 pending, 0 leased (done)" in status
    assert "stage 100 downsample: 0 pending, 0 leased (done)" in status


def test_second_run_does_nothing(tmp_path, igneous):
    pfile = setup_dir(tmp_path, PIPELINE)
    igneous("run", pfile, check=True)
    before = tree(tmp_path / "out")
    proc = igneous("run", pfile, check=True)
    assert "resuming" in proc.stderr and "Executed 0 tasks" in proc.stderr
    assert tree(tmp_path / "out") == before


def _completed(queue: Path) -> int:
    try:
        with open_queue(str(queue), create=False) as q:
            return q.counts().completed or 0
    except Exception:
        return 0


def test_killed_run_resumes_to_identical_files(tmp_path, igneous):
    """SIGKILL the whole run (runner and workers) mid-way, resume, and compare
    the output tree byte for byte with an uninterrupted run."""
    data = np.random.RandomState(9).randint(0, 255, (160, 150, 24)).astype(np.uint8)
    whole = setup_dir(tmp_path / "whole", PIPELINE, data=data)
    igneous("-p", "2", "run", whole, check=True)
    total = _completed(tmp_path / "whole" / "p.queue")

    pfile = setup_dir(tmp_path / "killed", PIPELINE, data=data)
    queue = tmp_path / "killed" / "p.queue"
    proc = subprocess.Popen([sys.executable, "-m", "igneous", "-p", "2", "run", str(pfile)],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    # kill early: the whole run takes ~1 s now, so waiting for a third of it raced its end
    while _completed(queue) < max(1, total // 10) and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _completed(queue)
    assert 0 < done_before < total, "the kill should land mid-pipeline"

    igneous("queue", "release", queue, check=True)  # what lease expiry does, without the wait
    igneous("-p", "2", "run", pfile, check=True)
    # a chunk write cut by the kill can leave its temporary file (never a partial
    # chunk: chunks appear only by rename); those are not part of the layer
    killed = {k: v for k, v in tree(tmp_path / "killed" / "out").items() if not k.endswith(".tmp")}
    assert killed == tree(tmp_path / "whole" / "out")
    # nothing finished was redone: only tasks cut off by the kill ran twice
    assert _completed(queue) <= total + 2


BAD = {
    "unknown step": ('source = "./raw"\n[[steps]]\nstep = "transfer"\ndest_layer_path = "./o"\n\n'
                     '[[steps]]\nstep = "mesh-forj"\n', 7, "unknown step 'mesh-forj'"),
    "unknown option": ('source = "./raw"\n[[steps]]\nstep = "downsample"\nnum_mip = 2\n',
                       4, "has no option 'num_mip'"),
    "missing option": ('source = "./raw"\n[[steps]]\nstep = "transfer"\nchunk_size = [8, 8, 8]\n',
                       2, "missing option 'dest_layer_path'"),
    "cycle": ('source = "./raw"\n[[steps]]\nid = "a"\nstep = "downsample"\nafter = ["b"]\n\n'
              '[[steps]]\nid = "b"\nstep = "downsample"\nafter = ["a"]\n', 2, "cycle: a -> b -> a"),
    "unknown after": ('source = "./raw"\n[[steps]]\nstep = "downsample"\nafter = "nope"\n',
                      4, "'nope', which is not a step id"),
    "no source": ('[[steps]]\nstep = "downsample"\n', 1, "needs 'layer_path'"),
    "bad toml": ('source = "./raw"\n[[steps]\n', None, "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pipeline_refused_before_enqueueing(tmp_path, igneous, case):
    text, line, message = BAD[case]
    pfile = setup_dir(tmp_path, text)
    proc = igneous("run", pfile)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert message in err and "Traceback" not in err, err
    assert len(err.splitlines()) == 1
    if line is not None:
        assert f"p.toml:{line}:" in err
    assert not (tmp_path / "p.queue").exists()


def test_failed_step_holds_later_steps(tmp_path, igneous):
    text = PIPELINE.replace('source = "./raw"', 'source = "./missing"')
    pfile = setup_dir(tmp_path, text)
    proc = igneous("run", pfile, "--max-attempts", "1")
    assert proc.returncode == 1
    assert "failed for good" in proc.stderr
    assert not (tmp_path / "out").exists()
    with open_queue(str(tmp_path / "p.queue"), create=False) as q:
        dead = q.dead_letters(10)
    # the transfer's planning failed (no such layer) and the downsample refused to start
    assert any("not started" in d.error for d in dead)
    assert any("missing" in d.error for d in dead)


def test_pipeline_needs_a_stage_queue(tmp_path, igneous, sqs_queue):
    pfile = setup_dir(tmp_path, PIPELINE)
    proc = igneous("run", pfile, "--queue", sqs_queue)
    assert proc.returncode != 0 and "cannot hold a pipeline" in proc.stderr


def test_pipeline_on_postgres(tmp_path, igneous, pg_server):
    """The cluster queue holds a pipeline too; a second run resumes it."""
    data = image()
    pfile = setup_dir(tmp_path, PIPELINE, data=data)
    spec = f"{pg_server}?queue=pipe-{tmp_path.name[-12:]}"
    igneous("run", pfile, "--queue", spec, "--enqueue-only", check=True)
    status = igneous("queue", "status", spec, check=True).stdout
    assert "stage 0 transfer" in status and "stage 100 downsample" in status
    proc = igneous("-p", "2", "run", pfile, "--queue", spec, check=True)
    assert "resuming" in proc.stderr and "Pipeline done" in proc.stderr
    np.testing.assert_array_equal(CloudVolume(f"file://{tmp_path}/out")[:, :, :][..., 0], data)
