"""The spec's scripting examples (igneous-README.md), run as written with
python-task-queue installed, on small layers; outputs checked independently."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.compat.helpers import (
    OFFSET,
    image,
    make_layer,
    mean_pool_2x2,
    read,
    run_script,
    segmentation,
)

pytest.importorskip("taskqueue", reason="python-task-queue (pip install task-queue) is not installed")


def test_in_memory_queue_meshing(tmp_path):
    """"In Memory Queue (Simple Execution)", verbatim but for the path, mip and shape."""
    seg = segmentation()
    path = make_layer(tmp_path / "seg", seg)
    proc = run_script(f"""
        from taskqueue import LocalTaskQueue
        import igneous.task_creation as tc

        # Mesh on 8 cores, use True to use all cores
        cloudpath = {path!r}
        tq = LocalTaskQueue(parallel=2)
        tasks = tc.create_meshing_tasks(cloudpath, mip=0, shape=(32, 32, 32))
        tq.insert(tasks)
        tq.execute()
        tasks = tc.create_mesh_manifest_tasks(cloudpath)
        tq.insert(tasks)
        tq.execute()
        print("Done!")
    """, cwd=tmp_path)
    assert proc.stdout.count("Done!") == 1
    from cloudvolume import CloudVolume

    cv = CloudVolume(path, progress=False)
    labels = [int(x) for x in np.unique(seg) if x]
    assert labels and max(labels) > 2**53
    for label in labels:
        mesh = cv.mesh.get(label)
        mesh = mesh[label] if isinstance(mesh, dict) else mesh
        xyz = np.argwhere(seg == label)
        lo = (xyz.min(axis=0) + OFFSET) * (4, 4, 40)
        hi = (xyz.max(axis=0) + 1 + OFFSET) * (4, 4, 40)
        v = mesh.vertices
        assert len(v), label
        # marching cubes runs through voxel centres: within half a voxel of the box
        assert np.all(v.min(axis=0) >= lo - (2, 2, 20)) and np.all(v.max(axis=0) <= hi + (2, 2, 20))


def test_filesystem_queue_producer_consumer(tmp_path):
    """Producer and consumer scripts in separate processes on TaskQueue("fq://...").
    The spec's producer also calls ``tq.execute()``, which python-task-queue's
    TaskQueue does not have (it would raise AttributeError with the original
    too); the consumer gets a ``stop_fn`` so the test ends."""
    img = image()
    path = make_layer(tmp_path / "img", img)
    queue = tmp_path / "queue"
    run_script(f"""
        from taskqueue import TaskQueue
        import igneous.task_creation as tc

        cloudpath = {path!r}
        tq = TaskQueue("fq://{queue}")
        tasks = tc.create_downsampling_tasks(cloudpath, mip=0, num_mips=2)
        tq.insert(tasks)
        print("Tasks created!")
    """, cwd=tmp_path)
    inserted = int((queue / "insertions").read_text())
    assert inserted > 0
    run_script(f"""
        from taskqueue import TaskQueue
        import igneous.tasks # magic import needed to provide task definitions

        tq = TaskQueue("fq://{queue}")
        tq.poll(
          verbose=True, # prints progress
          lease_seconds=600, # allow exclusive 10 min per task
          tally=True, # makes tq.completed work, logs 1 byte per completed task
          stop_fn=lambda: tq.is_empty(),
        )
    """, cwd=tmp_path)
    assert (queue / "completions").stat().st_size == inserted
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))
    assert np.array_equal(read(path, 2), mean_pool_2x2(img, 2))


def test_our_queue_serves_ptq_filequeue_and_status_agrees(tmp_path):
    """`igneous -p 2 execute -x fq://DIR` on a queue python-task-queue filled
    from our planners; `igneous queue status` and ptq's counters agree."""
    img = image(1)
    path = make_layer(tmp_path / "img", img)
    queue = tmp_path / "queue"
    run_script(f"""
        from taskqueue import TaskQueue
        import igneous.task_creation as tc
        TaskQueue("fq://{queue}").insert(tc.create_downsampling_tasks({path!r}, mip=0, num_mips=1))
    """, cwd=tmp_path)
    ig = [sys.executable, "-m", "igneous"]
    subprocess.run([*ig, "-p", "2", "execute", "-x", "-q", f"fq://{queue}"], check=True, timeout=120)
    status = subprocess.run([*ig, "queue", "status", f"fq://{queue}"], capture_output=True,
                            text=True, check=True).stdout
    proc = run_script(f"""
        from taskqueue import TaskQueue
        tq = TaskQueue("fq://{queue}")
        print(tq.inserted, tq.completed, tq.enqueued)
    """, cwd=tmp_path)
    inserted, completed, enqueued = map(int, proc.stdout.split())
    assert inserted == completed > 0 and enqueued == 0
    assert f"{completed}" in status
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))


def test_sqs_producer_then_our_workers(tmp_path, aws_env, sqs_queue):
    """"Populating the SQS Queue" verbatim (the queue on the moto server), then
    `igneous -p 2 execute -x sqs://...`."""
    import boto3

    name = sqs_queue[len("sqs://"):]
    boto3.client("sqs", endpoint_url=aws_env).create_queue(QueueName=name)
    img = image(2)
    path = make_layer(tmp_path / "img", img)
    script = tmp_path / "populate.py"
    script.write_text(f"""
import sys
from taskqueue import TaskQueue
import igneous.task_creation as tc

cloudpath = sys.argv[1]

# Get qurl from the SQS queue metadata, visible on the web dashboard when you click on it.
tq = TaskQueue("sqs://{name}")
tasks = tc.create_downsampling_tasks(
  cloudpath, mip=0,
  fill_missing=True, preserve_chunk_size=True
)
tq.insert(tasks)
print("Done!")
""")
    subprocess.run([sys.executable, str(script), path], check=True, timeout=120, cwd=tmp_path)
    subprocess.run([sys.executable, "-m", "igneous", "-p", "2", "execute", "-x", "-q", sqs_queue],
                   check=True, timeout=180)
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))


def test_voxel_counts_script(tmp_path):
    """"Scripting Voxel Counts". The spec's ``"/".join(cloudpath, "stats", ...)``
    cannot run (str.join takes one list) and leaves out the scale key that the
    original (and we) write under (``$CLOUDPATH/$KEY/stats/voxel_counts.im``, as
    its prose says); the test joins that list."""
    seg = segmentation(3)
    cloudpath = make_layer(tmp_path / "seg", seg)
    proc = run_script(f"""
        import igneous.task_creation as tc
        from taskqueue import LocalTaskQueue

        cloudpath = {cloudpath!r}
        mip = 0
        tasks = tc.create_voxel_counting_tasks(
          cloudpath, mip=mip
        )
        tq = LocalTaskQueue(parallel=1)
        tq.insert_all(tasks)

        tc.accumulate_voxel_counts(cloudpath, mip)

        from cloudfiles import CloudFile
        from mapbuffer import IntMap
        import json
        cf = CloudFile("/".join([cloudpath, "4_4_40", "stats", "voxel_counts.im"]))
        im = IntMap(cf.get())
        print(json.dumps({{str(k): int(im[k]) for k in im.keys()}}))
    """, cwd=tmp_path)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    labels, counts = np.unique(seg, return_counts=True)
    want = {str(int(k)): int(c) for k, c in zip(labels, counts) if k}
    got.pop("0", None)
    assert got == want and max(map(int, got)) > 2**53


def test_ccl_script(tmp_path):
    """"Scripting CCL": steps 1-4 through LocalTaskQueue, step 3 as
    ``igneous.tasks.image.ccl.create_relabeling(src, mip, shape)``; the result
    is cc3d's 6-connected labeling of the whole array, up to renumbering."""
    cc3d = pytest.importorskip("cc3d")
    seg = segmentation(4)
    src = make_layer(tmp_path / "seg", seg)
    dest = f"file://{tmp_path / 'ccl'}"
    run_script(f"""
        import igneous.task_creation as tc
        import igneous.tasks.image.ccl
        from taskqueue import LocalTaskQueue

        cloudpath, src, src_path, dest_path, mip = {src!r}, {src!r}, {src!r}, {dest!r}, 0
        shape = (16, 16, 8)
        tq = LocalTaskQueue(parallel=2)
        tasks = tc.create_ccl_face_tasks( # Step 1
          cloudpath, mip, shape=shape,
          # optional, for grayscale images
          threshold_gte=None, threshold_lte=None,
          dust_threshold=0,
        )
        tq.insert(tasks); tq.execute()
        tasks = tc.create_ccl_equivalence_tasks( # Step 2
          cloudpath, mip, shape,
          None, None,
          0
        )
        tq.insert(tasks); tq.execute()
        igneous.tasks.image.ccl.create_relabeling(src, mip, shape)
        tasks = tc.create_ccl_relabel_tasks( # Step 4
          src_path, dest_path,
          mip, shape=shape,
          chunk_size=None, encoding=None,
          threshold_gte=None,
          threshold_lte=None,
          dust_threshold=0,
        )
        tq.insert(tasks); tq.execute()
    """, cwd=tmp_path)
    out = read(dest)
    want = cc3d.connected_components(seg, connectivity=6, out_dtype=np.uint64)
    assert np.array_equal(out == 0, want == 0)
    pairs = np.unique(np.stack([out[out > 0], want[want > 0]], axis=1), axis=0)
    assert len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


SKELETON_RES = (64, 64, 64)  # the spec's thresholds are physical: bars of ~5 um


def tubes() -> np.ndarray:
    """Two long bars (ids > 2^53) for skeletons: one along x, one along y."""
    from tests.compat.helpers import BIG

    seg = np.zeros((97, 83, 21), np.uint64)
    seg[:, 5:11, 2:8] = BIG + np.uint64(1)
    seg[40:46, 14:, 9:15] = BIG + np.uint64(2)
    return np.asfortranarray(seg)


@pytest.mark.parametrize("sharded", [False, True])
def test_skeleton_script(tmp_path, sharded):
    """"Scripting Skeletonization": both passes through LocalTaskQueue. The
    spec's call repeats ``spatial_index`` and ``sharded`` (a SyntaxError in
    Python), so each is given once; the sharded merge's two stages run in
    order with ``parallel=1``."""
    from igneous.sample import create_layer

    seg = tubes()
    cloudpath = create_layer(f"file://{tmp_path / 'seg'}", seg, resolution=SKELETON_RES,
                             offset=OFFSET, chunk_size=(32, 32, 16))
    merge = ("""tasks = tc.create_sharded_skeleton_merge_tasks(
          layer_path, # mip is automatically derived from info file
          dust_threshold=1000,
          tick_threshold=3500,
          shard_index_bytes=2**13,
          minishard_index_bytes=2**15,
          minishard_index_encoding='gzip', # or None
          data_encoding='gzip', # or None
          max_cable_length=None,
          spatial_index_db=None
        )""" if sharded else """tasks = tc.create_unsharded_skeleton_merge_tasks(
          layer_path, mip,
          crop=0, # in voxels
          magnitude=3, # same as mesh manifests
          dust_threshold=4000, # in nm
          tick_threshold=6000, # in nm
          delete_fragments=False # Delete scratch files from first stage
        )""")
    run_script(f"""
        from cloudvolume.lib import Vec
        from taskqueue import LocalTaskQueue
        import igneous.task_creation as tc

        cloudpath = layer_path = {cloudpath!r}
        mip = 0
        tq = LocalTaskQueue(parallel={1 if sharded else 2})
        # First Pass: Generate Skeletons
        tasks = tc.create_skeletonizing_tasks(
            cloudpath,
            mip, # Which resolution to skeletionize at (near isotropic is often good)
            shape=Vec(32, 32, 32), # size of individual skeletonizing tasks (not necessary to be chunk aligned)
            info=None, # provide a cloudvolume info file if necessary (usually not)
            fill_missing=False, # Use zeros if part of the image is missing instead of raising an error

            # see Kimimaro's documentation for the below parameters
            teasar_params={{'scale':10, 'const': 10}},
            object_ids=None, # Only skeletonize these ids
            mask_ids=None, # Mask out these ids
            fix_branching=True, # (True) higher quality branches at speed cost
            fix_borders=True, # (True) Enable easy stitching of 1 voxel overlapping tasks
            dust_threshold=1000, # Don't skeletonize below this physical distance
            progress=False, # Show a progress bar
            parallel=1, # Number of parallel processes to use (more useful locally)
            spatial_index=True, # generate a spatial index for querying skeletons by bounding box
            sharded={sharded}, # generate intermediate shard fragments for later processing into sharded format
            cross_sectional_area=False, # Compute the cross sectional area for each vertex.
            cross_sectional_area_smoothing_window=5, # Rolling average of vertices.
          )
        tq.insert(tasks)
        tq.execute()
        {merge}
        tq.insert(tasks)
        tq.execute()
    """, cwd=tmp_path)
    from cloudvolume import CloudVolume

    cv = CloudVolume(cloudpath, progress=False)
    res = np.array(SKELETON_RES)
    for label in (int(x) for x in np.unique(seg) if x):
        skel = cv.skeleton.get(label)
        assert len(skel.vertices) > 1, label
        xyz = np.argwhere(seg == label)
        lo = (xyz.min(axis=0) + OFFSET) * res
        hi = (xyz.max(axis=0) + 1 + OFFSET) * res
        assert np.all(skel.vertices >= lo - 1e-3) and np.all(skel.vertices <= hi + 1e-3), label
        length = (xyz.max(axis=0) - xyz.min(axis=0)).max() * 64  # the bar's long axis, in nm
        assert 0.7 * length <= skel.cable_length() <= 1.3 * length, (label, skel.cable_length())


def test_contrast_script(tmp_path):
    """"Scripting Contrast Normalization" through LocalTaskQueue, with
    ``coverage_factor=1.0`` (the spec's 0.01 samples at random) so the result is
    checkable against numpy: each slice stretched by its 1% tails."""
    from tests.test_contrast import expected_stretch

    data = image(14) // 2 + 40
    layer_path = make_layer(tmp_path / "img", data)
    dest_path = f"file://{tmp_path / 'eq'}"
    run_script(f"""
        from taskqueue import LocalTaskQueue
        from igneous.task_creation import (
            create_luminance_levels_tasks, create_contrast_normalization_tasks)

        layer_path = src_path = {layer_path!r}
        dest_path = {dest_path!r}
        tq = LocalTaskQueue(parallel=2)
        # first pass: create per z-slice histogram
        tasks = create_luminance_levels_tasks(layer_path, coverage_factor=1.0, shape=None, offset=(0,0,0), mip=0)
        tq.insert_all(tasks)
        # second pass: apply histogram equalization
        tasks = create_contrast_normalization_tasks(src_path, dest_path, shape=None, mip=0, clip_fraction=0.01, fill_missing=False, translate=(0,0,0))
        tq.insert_all(tasks)
    """, cwd=tmp_path)
    assert np.array_equal(read(dest_path), expected_stretch(data, 0.01))
