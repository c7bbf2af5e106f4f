"""The original Igneous's skeleton tasks run our forge and merge: SkeletonTask
built by hand or decoded from the original's payloads, the original's merge
tasks by prefix (unsharded) and by shard number (sharded), and queues the
reference's own planners filled, drained by ``igneous execute``. Every label's
skeleton is read back with CloudVolume and its cable length checked against
kimimaro run on the whole volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.compat.helpers import BIG, OFFSET, REFERENCE, REFERENCE_READY, run_script

RES = (64, 64, 64)
TEASAR = {"scale": 4, "const": 100}
STEP = 32  # the task grid; the original's tasks are STEP + 1 voxels (one of overlap)
THRESHOLDS = dict(dust_threshold=500, tick_threshold=500)
RADIUS_ONLY = [{"id": "radius", "data_type": "float32", "num_components": 1}]


def skeleton_volume() -> np.ndarray:
    """Bars and an L across block seams; ids with 1, 4 and 19 digits (the
    original's merge tasks divide labels by decimal prefix)."""
    seg = np.zeros((97, 83, 21), np.uint64)
    seg[:, 5:11, 2:8] = BIG + np.uint64(1)  # along x, across every x seam
    seg[40:46, 14:, 9:15] = BIG + np.uint64(2)  # along y
    seg[60:66, 14:70, 2:8] = 7  # an L: along y, then x
    seg[60:95, 64:70, 2:8] = 7
    seg[5:30, 30:36, 12:18] = 1234  # short, across the y seam
    return np.asfortranarray(seg)


@pytest.fixture(scope="module")
def expected() -> dict[int, float]:
    """Cable length per label of kimimaro on the whole volume, postprocessed
    with the merge's thresholds: the independent computation."""
    import kimimaro

    skels = kimimaro.skeletonize(skeleton_volume(), teasar_params=TEASAR, anisotropy=RES,
                                 dust_threshold=0, progress=False)
    return {int(k): kimimaro.postprocess(s, **THRESHOLDS).cable_length() for k, s in skels.items()}


def make_seg(path: Path) -> str:
    from igneous.sample import create_layer

    return create_layer(f"file://{path}", skeleton_volume(), resolution=RES, offset=OFFSET,
                        chunk_size=(32, 32, 16))


def check_skeletons(cloudpath: str, expected: dict[int, float]) -> dict[int, float]:
    """Every label reads back with CloudVolume, inside its label's box, with the
    info's attributes and kimimaro's cable length (within 10%)."""
    from cloudvolume import CloudVolume

    cv = CloudVolume(cloudpath, progress=False)
    seg = skeleton_volume()
    res = np.asarray(RES)
    lengths = {}
    for label, want in expected.items():
        skel = cv.skeleton.get(label)
        assert skel.extra_attributes == RADIUS_ONLY
        assert np.all(skel.radius > 0), label
        xyz = np.argwhere(seg == label) + OFFSET
        assert np.all(skel.vertices >= xyz.min(0) * res) and \
            np.all(skel.vertices <= (xyz.max(0) + 1) * res), label
        np.testing.assert_allclose((skel.vertices / res) % 1, 0.5, atol=1e-3)  # voxel centres
        lengths[label] = skel.cable_length()
        assert abs(lengths[label] - want) <= 0.1 * want, (label, lengths[label], want)
    return lengths


def original_prefixes(magnitude: int) -> list:
    """The prefixes the original's unsharded merge planner gives its tasks."""
    return [f"{i}:" for i in range(1, 10 ** (magnitude - 1))] + \
        list(range(10 ** (magnitude - 1), 10**magnitude))


def blocks() -> list[list[int]]:
    from igneous.grid import grid

    stop = np.asarray(OFFSET) + skeleton_volume().shape
    return [[int(x) for x in lo] for lo, _ in grid(OFFSET, stop, OFFSET, (STEP,) * 3)]


def write_skeleton_info(cloudpath: str) -> None:
    """What the original's skeletonizing planner writes before its tasks run."""
    from igneous.layers import LayerInfo, write_info

    layer = LayerInfo(cloudpath)
    layer.update(dict(layer.info, skeletons="skeletons_mip_0"))
    write_info(f"{cloudpath}/skeletons_mip_0", {
        "@type": "neuroglancer_skeletons", "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
        "vertex_attributes": RADIUS_ONLY, "mip": 0,
        "spatial_index": {"resolution": list(RES), "chunk_size": [STEP * r for r in RES]}})


@pytest.mark.parametrize("sharded", [False, True])
def test_skeleton_tasks_by_hand(tmp_path, expected, sharded):
    """Forge blocks with the original's keywords (unsharded: built by hand;
    sharded: decoded from its queue payloads), then its merge tasks."""
    from igneous.compat.payloads import task_of_message
    from igneous.formats.sharding import hashed_sharding
    from igneous.layers import read_sub_info, write_info
    from igneous.tasks import ShardedSkeletonMergeTask, SkeletonMergeTask, SkeletonTask

    cloudpath = make_seg(tmp_path / "seg")
    write_skeleton_info(cloudpath)
    for offset in blocks():
        kw = dict(cloudpath=cloudpath, shape=[STEP + 1] * 3, offset=offset, mip=0,
                  teasar_params=TEASAR, will_postprocess=True, dust_threshold=100,
                  sharded=sharded, spatial_grid_shape=[STEP] * 3)
        if sharded:
            task_of_message({"payload": dict(kw, **{"class": "SkeletonTask"})})()
        else:
            SkeletonTask(**kw).execute()
    if not sharded:
        for prefix in original_prefixes(2):
            SkeletonMergeTask(cloudpath=cloudpath, prefix=prefix, **THRESHOLDS).execute()
    else:
        url = f"{cloudpath}/skeletons_mip_0"
        spec = hashed_sharding(len(expected), max_labels_per_shard=1)
        assert spec["shard_bits"] >= 1
        write_info(url, dict(read_sub_info(url), sharding=spec))
        for shard in range(2 ** spec["shard_bits"]):
            ShardedSkeletonMergeTask(cloudpath=cloudpath, shard_no=format(shard, "x"),
                                     **THRESHOLDS).execute()
    check_skeletons(cloudpath, expected)


def test_max_cable_length_keeps_long_skeletons_unprocessed(tmp_path, expected):
    """The original writes a skeleton over max_cable_length merged but not
    postprocessed (observed on the reference); ours does the same."""
    from cloudvolume import CloudVolume

    from igneous.tasks import SkeletonTask, UnshardedSkeletonMergeTask

    cloudpath = make_seg(tmp_path / "seg")
    write_skeleton_info(cloudpath)
    for offset in blocks():
        SkeletonTask(cloudpath=cloudpath, shape=[STEP + 1] * 3, offset=offset, mip=0,
                     teasar_params=TEASAR, will_postprocess=True, dust_threshold=100).execute()
    UnshardedSkeletonMergeTask(cloudpath=cloudpath, prefix="7:", dust_threshold=500,
                               tick_threshold=10**6, max_cable_length=1000).execute()
    skel = CloudVolume(cloudpath, progress=False).skeleton.get(7)
    assert skel.cable_length() >= 0.9 * expected[7]  # long: not trimmed by the huge tick threshold


def test_skeleton_refusals(tmp_path):
    from igneous.errors import UserError
    from igneous.tasks import ShardedSkeletonMergeTask, SkeletonTask, UnshardedSkeletonMergeTask

    cloudpath = make_seg(tmp_path / "seg")
    kw = dict(cloudpath=cloudpath, shape=(33, 33, 33), offset=OFFSET, mip=0,
              teasar_params=TEASAR, will_postprocess=True)
    with pytest.raises(UserError, match="names no skeleton directory"):
        SkeletonTask(**kw).execute()
    with pytest.raises(UserError, match="frag_path="):
        SkeletonTask(**kw, frag_path="file:///elsewhere")
    with pytest.raises(UserError, match="will_postprocess=False"):
        SkeletonTask(**dict(kw, will_postprocess=False)).execute()
    with pytest.raises(UserError, match="crop=2"):
        UnshardedSkeletonMergeTask(cloudpath=cloudpath, prefix=1, crop=2)
    with pytest.raises(UserError, match="dry_run=True"):
        ShardedSkeletonMergeTask(cloudpath=cloudpath, shard_no="0", dry_run=True)
    write_skeleton_info(cloudpath)
    with pytest.raises(UserError, match="no fragments forged by SkeletonTask"):
        UnshardedSkeletonMergeTask(cloudpath=cloudpath, prefix=1).execute()


# -- queues filled by the reference's own planners ----------------------------------

PLAN = """
    import sys
    from taskqueue import TaskQueue
    import igneous.task_creation as tc
    tq = TaskQueue({queue!r})
    tq.insert({call})
"""


def reference_fill(tmp_path: Path, queue: Path, call: str) -> None:
    run_script(PLAN.format(queue=f"fq://{queue}", call=call), python=str(REFERENCE), cwd=tmp_path)


needs_reference = pytest.mark.skipif(not REFERENCE_READY,
                                     reason="no reference venv (.bench/reference)")


def forge_call(cloudpath: str, sharded: bool) -> str:
    return (f"tc.create_skeletonizing_tasks({cloudpath!r}, mip=0, shape=({STEP}, {STEP}, {STEP}), "
            f"teasar_params={TEASAR!r}, dust_threshold=100, sharded={sharded})")


def unsharded_merge_call(cloudpath: str) -> str:
    return f"tc.create_unsharded_skeleton_merge_tasks({cloudpath!r}, magnitude=1, **{THRESHOLDS!r})"


@needs_reference
@pytest.mark.parametrize("sharded", [False, True])
def test_reference_skeleton_queues(tmp_path, expected, sharded):
    """The reference plans forge then merge into FileQueues (sharded: its
    planner reads our spatial index to count labels and writes the sharding);
    `igneous -p 2 execute -x` drains both."""
    from tests.compat.test_reference_queues import ours

    cloudpath = make_seg(tmp_path / "seg")
    reference_fill(tmp_path, tmp_path / "forge", forge_call(cloudpath, sharded))
    ours(f"fq://{tmp_path / 'forge'}")
    merge = (f"tc.create_sharded_skeleton_merge_tasks({cloudpath!r}, max_labels_per_shard=1, "
             f"**{THRESHOLDS!r})" if sharded else unsharded_merge_call(cloudpath))
    reference_fill(tmp_path, tmp_path / "merge", merge)
    assert len(list((tmp_path / "merge" / "queue").iterdir())) > 1  # several shards / prefixes
    ours(f"fq://{tmp_path / 'merge'}")
    check_skeletons(cloudpath, expected)
    assert not list((tmp_path / "merge" / "queue").iterdir())


@pytest.mark.slow
@needs_reference
def test_reference_skeletons_side_by_side(tmp_path, expected):
    """The same queues drained by the reference on a copy: the same labels,
    cable lengths within 25% of ours (its seams are fused differently: on this
    volume its L-shaped label is 13% longer than kimimaro on the whole volume,
    ours 6% shorter); both put vertices at voxel centres, ``(i + 0.5) * res``."""
    from cloudvolume import CloudVolume

    from tests.compat.test_reference_queues import drain_both, ours, reference

    layer = tmp_path / "seg"
    cloudpath = make_seg(layer)
    reference_fill(tmp_path, tmp_path / "forge", forge_call(cloudpath, False))
    layer2 = drain_both(tmp_path, layer, tmp_path / "forge")
    reference_fill(tmp_path, tmp_path / "merge", unsharded_merge_call(cloudpath))
    ours(f"fq://{tmp_path / 'merge'}")
    reference_fill(tmp_path, tmp_path / "merge-ref", unsharded_merge_call(f"file://{layer2}"))
    reference(f"fq://{tmp_path / 'merge-ref'}", cwd=tmp_path)
    mine = check_skeletons(cloudpath, expected)
    cv = CloudVolume(f"file://{layer2}", progress=False)
    names = {p.name.split(".")[0] for p in (layer2 / "skeletons_mip_0").iterdir()}
    assert {n for n in names if n.isdigit()} == {str(k) for k in mine}
    res = np.asarray(RES, dtype=np.float64)
    ours_cv = CloudVolume(cloudpath, progress=False)
    for label, length in mine.items():
        theirs = cv.skeleton.get(label)
        assert abs(theirs.cable_length() - length) <= 0.25 * length, label
        for skel in (theirs, ours_cv.skeleton.get(label)):
            np.testing.assert_allclose((skel.vertices / res) % 1, 0.5, atol=1e-3)
