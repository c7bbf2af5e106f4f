"""Queues filled by the original Igneous's own planners (the reference
implementation in .bench/reference, run as a black box) are drained by
`igneous -p 2 execute -x`; the outputs equal the reference executing the same
queue (a copy of it, on a copy of the layer)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.compat.helpers import (
    REFERENCE,
    REFERENCE_READY,
    image,
    make_layer,
    read,
    run_script,
    segmentation,
)

pytestmark = pytest.mark.skipif(not REFERENCE_READY, reason="no reference venv (.bench/reference)")
REF_IGNEOUS = REFERENCE.parent / "igneous"


def ours(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "igneous", "-p", "2", "execute", "-x", "-q", *args],
                   check=True, timeout=300, env=env)


def reference(*args: str, cwd: Path) -> None:
    subprocess.run([str(REF_IGNEOUS), "-p", "2", "execute", "-x", *args], check=True,
                   timeout=300, cwd=cwd, capture_output=True)


def fill(tmp_path: Path, code: str, queue: Path | str) -> None:
    run_script(f"""
        from taskqueue import TaskQueue
        import igneous.task_creation as tc
        tq = TaskQueue({str(queue)!r})
        {code}
    """, python=str(REFERENCE), cwd=tmp_path)


def drain_both(tmp_path: Path, layer: Path, queue: Path) -> Path:
    """Copy the layer and the queue (its tasks pointed at the copy), then drain
    the queue with our workers and the copy with the reference's; returns the
    reference's layer."""
    layer2, queue2 = tmp_path / f"{layer.name}-ref", tmp_path / f"{queue.name}-ref"
    shutil.copytree(layer, layer2)
    shutil.copytree(queue, queue2)
    for f in (queue2 / "queue").iterdir():
        f.write_text(f.read_text().replace(str(layer), str(layer2)))
    ours(f"fq://{queue}")
    reference(f"fq://{queue2}", cwd=tmp_path)
    return layer2


def same_layer(a: Path, b: Path) -> None:
    from cloudvolume import CloudVolume

    info = CloudVolume(f"file://{a}").info
    assert info["scales"] == CloudVolume(f"file://{b}").info["scales"]
    for mip, scale in enumerate(info["scales"]):
        assert sorted(os.listdir(a / scale["key"])) == sorted(os.listdir(b / scale["key"])), mip
        assert np.array_equal(read(f"file://{a}", mip), read(f"file://{b}", mip)), mip


@pytest.mark.parametrize("kind", ["image", "segmentation"])
def test_reference_downsample_fq(tmp_path, kind):
    data = image(5) if kind == "image" else segmentation(5)
    layer = tmp_path / kind
    make_layer(layer, data)
    queue = tmp_path / "queue"
    fill(tmp_path, f"tq.insert(tc.create_downsampling_tasks('file://{layer}', mip=0, num_mips=2))",
         f"fq://{queue}")
    layer2 = drain_both(tmp_path, layer, queue)
    assert len(os.listdir(queue / "queue")) == 0
    assert (queue / "completions").stat().st_size == int((queue / "insertions").read_text())
    same_layer(layer, layer2)


def test_reference_transfer_fq(tmp_path):
    src = tmp_path / "src"
    make_layer(src, image(6))
    queue = tmp_path / "queue"
    fill(tmp_path, f"tq.insert(tc.create_transfer_tasks('file://{src}', 'file://{tmp_path}/dest', "
         "chunk_size=(8, 8, 4), shape=(32, 32, 8)))", f"fq://{queue}")
    dest = tmp_path / "dest"
    dest2 = drain_both(tmp_path, dest, queue)
    same_layer(dest, dest2)


def test_reference_meshes_fq(tmp_path):
    """Forge then manifests, both planned by the reference; ours runs both. The
    meshes are ours (a different simplifier), so they are compared by label set
    and extent with the reference's, not byte for byte."""
    from cloudvolume import CloudVolume

    seg = segmentation(7)
    layer = tmp_path / "seg"
    make_layer(layer, seg)
    queue = tmp_path / "queue"
    fill(tmp_path, f"tq.insert(tc.create_meshing_tasks('file://{layer}', mip=0, shape=(32, 32, 32)))",
         f"fq://{queue}")
    layer2 = drain_both(tmp_path, layer, queue)
    for path, run in ((layer, lambda q: ours(q)), (layer2, lambda q: reference(q, cwd=tmp_path))):
        q = tmp_path / f"manifests-{path.name}"
        fill(tmp_path, f"tq.insert(tc.create_mesh_manifest_tasks('file://{path}', magnitude=2))",
             f"fq://{q}")
        run(f"fq://{q}")
    labels = [int(x) for x in np.unique(seg) if x]
    a, b = CloudVolume(f"file://{layer}"), CloudVolume(f"file://{layer2}")
    for label in labels:
        ma, mb = a.mesh.get(label), b.mesh.get(label)
        ma = ma[label] if isinstance(ma, dict) else ma
        mb = mb[label] if isinstance(mb, dict) else mb
        assert len(ma.vertices) and len(mb.vertices), label
        # same object: extents agree to within a voxel (4 x 4 x 40 nm)
        assert np.all(np.abs(ma.vertices.min(0) - mb.vertices.min(0)) <= (4, 4, 40)), label
        assert np.all(np.abs(ma.vertices.max(0) - mb.vertices.max(0)) <= (4, 4, 40)), label


def test_reference_ccl_fq(tmp_path):
    """The reference plans the four CCL steps; ours executes each queue and
    step 3 is ours (igneous.tasks.image.ccl.create_relabeling)."""
    cc3d = pytest.importorskip("cc3d")
    seg = segmentation(8)
    layer = tmp_path / "seg"
    make_layer(layer, seg)
    src, dest, shape = f"file://{layer}", f"file://{tmp_path}/ccl", (16, 16, 8)
    steps = [
        f"tq.insert(tc.create_ccl_face_tasks({src!r}, 0, shape={shape}))",
        f"tq.insert(tc.create_ccl_equivalence_tasks({src!r}, 0, shape={shape}))",
        None,
        f"tq.insert(tc.create_ccl_relabel_tasks({src!r}, {dest!r}, 0, shape={shape}))",
    ]
    for i, code in enumerate(steps):
        if code is None:
            run_script(f"""
                import igneous.tasks.image.ccl
                igneous.tasks.image.ccl.create_relabeling({src!r}, 0, {shape})
            """, cwd=tmp_path)
            continue
        q = tmp_path / f"q{i}"
        fill(tmp_path, code, f"fq://{q}")
        ours(f"fq://{q}")
    out = read(dest)
    want = cc3d.connected_components(seg, connectivity=6, out_dtype=np.uint64)
    assert np.array_equal(out == 0, want == 0)
    pairs = np.unique(np.stack([out[out > 0], want[want > 0]], axis=1), axis=0)
    assert len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


def test_reference_downsample_sqs(tmp_path, aws_env, sqs_queue):
    """The same over SQS (moto): the reference's planner fills the SQS queue
    and, for the comparison, a FileQueue of the same tasks on a twin layer
    (the reference draining SQS itself long-polls for minutes on the emulator)."""
    import boto3

    data = image(9)
    layer, layer2 = tmp_path / "img", tmp_path / "img-ref"
    make_layer(layer, data)
    make_layer(layer2, data)
    boto3.client("sqs", endpoint_url=aws_env).create_queue(QueueName=sqs_queue[len("sqs://"):])
    plan = "tq.insert(tc.create_downsampling_tasks('file://{}', mip=0, num_mips=2))"
    fill(tmp_path, plan.format(layer), sqs_queue)
    fill(tmp_path, plan.format(layer2), f"fq://{tmp_path}/queue-ref")
    ours(sqs_queue)
    reference(f"fq://{tmp_path}/queue-ref", cwd=tmp_path)
    same_layer(layer, layer2)
