"""The original's task classes, constructed directly with its keywords."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.compat.helpers import (
    OFFSET,
    REFERENCE,
    REFERENCE_READY,
    image,
    make_layer,
    mean_pool_2x2,
    read,
    run_script,
    segmentation,
)

CAPABILITY_TABLE = [
    "DownsampleTask", "MeshTask", "MeshManifestTask", "MeshManifestPrefixTask",
    "MeshManifestFilesystemTask", "SkeletonTask", "SkeletonMergeTask",
    "UnshardedSkeletonMergeTask", "ShardedSkeletonMergeTask", "TransferTask", "DeleteTask",
    "LuminanceLevelsTask", "ContrastNormalizationTask", "CCLFacesTask", "CCLEquivalancesTask",
    "RelabelCCLTask", "QuantizeTask", "WatershedRemapTask", "CountVoxelsTask",
]


def test_names_import_lazily_from_igneous_and_igneous_tasks():
    code = (
        "import sys, igneous, igneous.tasks\n"
        "assert 'numpy' not in sys.modules, 'import igneous pulled numpy'\n"
        f"for n in {CAPABILITY_TABLE!r}:\n"
        "    assert getattr(igneous, n) is getattr(igneous.tasks, n), n\n"
        "    assert callable(getattr(igneous, n).execute)\n"
        "import igneous.tasks.image.ccl as ccl\n"
        "assert callable(ccl.create_relabeling)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        import igneous

        igneous.NoSuchTask  # noqa: B018


@pytest.mark.skipif(not REFERENCE_READY, reason="no reference venv (.bench/reference)")
def test_keywords_are_the_originals(tmp_path):
    """Every class takes exactly the keywords (and defaults) of the original's task."""
    from igneous.compat.base import REQUIRED
    from igneous.compat.bridge import ORIGINAL_TASKS, original_class

    names = sorted(set(ORIGINAL_TASKS) - {"MeshManifestTask"})  # gone from the original
    proc = run_script(f"""
        import inspect, json, igneous.tasks as t
        out = {{}}
        for n in {names!r}:
            o = getattr(t, n)
            sig = inspect.signature(o.__init__ if isinstance(o, type) else o)
            ps = [p for p in sig.parameters.values() if p.name != "self"
                  and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
            out[n] = [[p.name, None if p.default is p.empty else repr(p.default)] for p in ps]
        print(json.dumps(out))
    """, python=str(REFERENCE), cwd=tmp_path)
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, params in theirs.items():
        ours = original_class(name).params
        assert [p for p, _ in params] == list(ours)[: len(params)], name
        for p, default in params:
            if default is None:
                assert ours[p] is REQUIRED, (name, p)
            elif "DownsampleMethods" not in default:
                assert repr(ours[p]) == default or ours[p] == eval(default), (name, p)  # noqa: S307


def test_downsample_task_direct(tmp_path):
    import igneous.task_creation as tc
    from igneous import DownsampleTask

    img = image(21)
    path = make_layer(tmp_path / "img", img)
    tc.create_downsampling_tasks(path, mip=0, num_mips=2)  # writes the scales
    task = DownsampleTask(layer_path=path, mip=0, shape=(64, 64, 16), offset=OFFSET,
                          fill_missing=False, max_mips=2)
    assert task.layer_path == path and task.sparse is False
    task.execute()
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))
    assert np.array_equal(read(path, 2), mean_pool_2x2(img, 2))


def test_refusals_name_the_keyword():
    from igneous import DownsampleTask, MeshTask
    from igneous.errors import UserError

    with pytest.raises(UserError, match="unsupported keyword 'bogus'"):
        DownsampleTask(layer_path="x", mip=0, shape=(1, 1, 1), offset=(0, 0, 0), bogus=1)
    with pytest.raises(UserError, match="keyword lod=2 is not supported"):
        MeshTask(shape=(1, 1, 1), offset=(0, 0, 0), layer_path="x", lod=2)
    with pytest.raises(TypeError, match="missing required argument 'offset'"):
        DownsampleTask(layer_path="x", mip=0, shape=(1, 1, 1))


def test_classes_queue_in_the_originals_payload_format(tmp_path):
    """A hand-made DownsampleTask goes into a python-task-queue FileQueue as the
    original's own payload ([[module, name], [], kwargs, id])."""
    pytest.importorskip("taskqueue")
    q = tmp_path / "q"
    run_script(f"""
        from taskqueue import TaskQueue
        from igneous.tasks import DownsampleTask
        TaskQueue("fq://{q}").insert([DownsampleTask("file:///x", 0, (8, 8, 8), (0, 0, 0))])
    """, cwd=tmp_path)
    (body,) = [json.loads(p.read_text()) for p in (q / "queue").iterdir()]
    assert body["payload"][0] == ["igneous.tasks.image.image", "DownsampleTask"]
    assert body["payload"][2] == {"layer_path": "file:///x", "mip": 0, "shape": [8, 8, 8],
                                  "offset": [0, 0, 0]}


def test_transfer_delete_quantize_remap_direct(tmp_path):
    import igneous.task_creation as tc
    from igneous.tasks import DeleteTask, QuantizeTask, TransferTask, WatershedRemapTask

    img = image(22)
    src = make_layer(tmp_path / "src", img)
    dest = f"file://{tmp_path / 'dest'}"
    tc.create_transfer_tasks(src, dest, chunk_size=(8, 8, 4), skip_downsamples=True)
    TransferTask(src_path=src, dest_path=dest, mip=0, shape=(64, 64, 16), offset=OFFSET,
                 skip_downsamples=True).execute()
    assert np.array_equal(read(dest), img)
    DeleteTask(layer_path=dest, shape=(64, 64, 16), offset=OFFSET, num_mips=0).execute()
    assert not any((tmp_path / "dest" / "4_4_40").iterdir())

    floats = np.asfortranarray(np.random.default_rng(3).random((45, 37, 11)).astype(np.float32))
    fsrc = make_layer(tmp_path / "float", floats)
    q = f"file://{tmp_path / 'q8'}"
    tc.create_quantize_tasks(fsrc, q, shape=(64, 64, 16))
    QuantizeTask(source_layer_path=fsrc, dest_layer_path=q, shape=(64, 64, 16), offset=OFFSET,
                 mip=0).execute()
    assert np.array_equal(read(q), np.clip(np.rint(floats.astype(np.float64) * 255), 0, 255))

    seg = segmentation(23)
    labels = np.unique(seg)
    small = np.searchsorted(labels, seg).astype(np.uint64)  # ids 0..n-1
    ssrc = make_layer(tmp_path / "seg", np.asfortranarray(small))
    table = (np.arange(len(labels), dtype=np.uint64) * 7 + np.uint64(2**60))
    np.save(tmp_path / "map.npy", table)
    out = f"file://{tmp_path / 'remapped'}"
    tc.create_transfer_tasks(ssrc, out, skip_downsamples=True)  # only its info: an empty layer
    WatershedRemapTask(map_path=f"file://{tmp_path / 'map.npy'}", src_path=ssrc, dest_path=out,
                       shape=(64, 64, 16), offset=OFFSET).execute()
    assert np.array_equal(read(out), table[small])


def test_transfer_task_translate_direct(tmp_path):
    """The original's TransferTask box is in source voxels, written at box + translate."""
    from cloudvolume import CloudVolume

    import igneous.task_creation as tc
    from igneous.tasks import TransferTask

    img = image(24)
    src = make_layer(tmp_path / "src", img)
    dest = f"file://{tmp_path / 'dest'}"
    translate = (16, -4, 5)
    tc.create_transfer_tasks(src, dest, translate=translate, skip_downsamples=True)
    assert CloudVolume(dest).info["scales"][0]["voxel_offset"] == [24, 0, 8]
    TransferTask(src_path=src, dest_path=dest, mip=0, shape=(64, 64, 16), offset=OFFSET,
                 translate=translate, skip_downsamples=True).execute()
    assert np.array_equal(read(dest), img)
