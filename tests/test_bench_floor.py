"""bench/floor.py's --procs: the same work in forked processes, every CPU-second counted."""

from __future__ import annotations

import numpy as np
import pytest

from bench import floor

pytest.importorskip("kimimaro")
pytest.importorskip("zmesh")


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    from cloudvolume import CloudVolume

    path = tmp_path_factory.mktemp("floor") / "seg"
    labels = np.zeros((70, 66, 40), dtype=np.uint64)
    labels[5:60, 10:20, 4:30] = 2**60 + 7  # a slab crossing block faces, label above 2^53
    labels[30:40, 30:62, 10:20] = 3
    labels[50:64, 40:50, 22:38] = 11
    info = CloudVolume.create_new_info(1, "segmentation", "uint64", "raw", [8, 8, 40],
                                       [3, 5, 7], labels.shape, chunk_size=[32, 32, 16])
    cv = CloudVolume(f"file://{path}", info=info, progress=False, compress="gzip")
    cv.commit_info()
    cv[3:73, 5:71, 7:47] = labels
    return path


@pytest.mark.parametrize("workflow", ["mesh", "skeleton"])
def test_procs_do_the_same_work(layer, workflow):
    if workflow == "mesh":
        pytest.importorskip("meshoptimizer")  # the floor's simplifier (the fast-mesh extra)
    one = floor.run(workflow, layer, shape=(32, 32, 16))
    two = floor.run(workflow, layer, shape=(32, 32, 16), procs=2)
    assert one["files"] > 3
    assert (two["files"], two["bytes_out"]) == (one["files"], one["bytes_out"])
    assert two["cpu"] > 0.5 * one["cpu"]  # the children's CPU-seconds are counted


def test_procs_refused_where_blocks_are_not_independent(layer):
    with pytest.raises(SystemExit, match="--procs applies to"):
        floor.run("ccl", layer, shape=(32, 32, 16), procs=2)
