"""Spatial index files checked against numpy label boxes and CloudVolume's reader."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.cli.spatial_index import spatial_index_group
from igneous.formats import spatial_index as si
from igneous.worker import run_local
from tests.volumes import BIG, make_layer

RNG = np.random.default_rng(3)


def blocky(shape, n=9) -> np.ndarray:
    coarse = RNG.integers(0, n, tuple(-(-s // 4) for s in shape))
    lab = np.kron(coarse, np.ones((4, 4, 4), dtype=np.int64))[: shape[0], : shape[1], : shape[2]]
    lab = lab.astype(np.uint64)
    lab[lab > 0] += np.uint64(BIG)
    return np.asfortranarray(lab)


def numpy_boxes(data: np.ndarray, offset) -> dict[int, tuple[list, list]]:
    out = {}
    for label in np.unique(data):
        if label:
            idx = np.nonzero(data == label)
            out[int(label)] = ([int(i.min()) + o for i, o in zip(idx, offset)],
                               [int(i.max()) + 1 + o for i, o in zip(idx, offset)])
    return out


def test_label_boxes_exact_for_big_ids():
    data = blocky((23, 17, 11))
    got = si.label_boxes(data, (5, -3, 7))
    want = numpy_boxes(data, (5, -3, 7))
    assert set(got) == set(want) and min(got) > 2**53
    for label, (lo, hi) in want.items():
        assert list(got[label][0]) == lo and list(got[label][1]) == hi
    assert si.label_boxes(np.zeros((4, 4, 4), np.uint32), (0, 0, 0)) == {}


@pytest.mark.parametrize("resolution", [(16, 16, 40), (4.5, 4, 40)])
def test_index_read_by_cloudvolume(tmp_path, igneous, resolution):
    from cloudvolume import CloudVolume

    data = blocky((37, 29, 19))
    offset = (4, 5, 2)  # (CloudVolume misnames index files at fractional physical offsets)
    path = make_layer(f"{tmp_path}/seg", data, offset=offset, resolution=resolution,
                      layer_type="segmentation")
    r = igneous("mesh", "spatial-index", "create", path, "--shape", "16,16,8")
    assert r.returncode == 0, r.stderr
    cv = CloudVolume(path)
    res = np.asarray(resolution, dtype=float)
    everything = set(int(x) for x in cv.mesh.spatial_index.query(cv.bounds * cv.resolution))
    assert everything == set(numpy_boxes(data, offset))
    mesh_dir = f"{path}/{cv.info['mesh']}"
    assert si.query(mesh_dir) == everything
    lo, hi = np.array(offset) + [10, 7, 4], np.array(offset) + [15, 9, 6]
    got = si.query(mesh_dir, lo, hi)
    inside = {int(x) for x in np.unique(data[10:15, 7:9, 4:6]) if x}
    touching = {k for k, (blo, bhi) in numpy_boxes(data, offset).items()
                if np.all(np.array(blo) < hi) and np.all(np.array(bhi) > lo)}
    assert inside <= got <= touching | inside
    # CloudVolume's own box query agrees
    box = CloudVolume(path).mesh.spatial_index.query(
        __import__("cloudvolume").Bbox(lo * res, hi * res))
    assert {int(x) for x in box} == got
    db = tmp_path / "x.db"
    r = igneous("mesh", "spatial-index", "db", path, f"sqlite://{db}")
    assert r.returncode == 0, r.stderr
    rows = sqlite3.connect(db).execute("select distinct label from file_lookup").fetchall()
    assert {int(np.int64(x[0]).view(np.uint64)) for x in rows} == everything


def test_index_task_plan_api(tmp_path):
    data = blocky((20, 20, 10))
    path = make_layer(f"{tmp_path}/seg", data, layer_type="segmentation")
    plan = tc.create_spatial_index_mesh_tasks(path, shape=(10, 10, 10))
    assert len(plan) == 4
    run_local([plan], progress=False)
    from cloudvolume import CloudVolume

    cv = CloudVolume(path)
    assert si.query(f"{path}/{cv.info['mesh']}") == set(numpy_boxes(data, (0, 0, 0)))
    image = make_layer(f"{tmp_path}/img", np.zeros((8, 8, 8), np.uint8), layer_type="image")
    from igneous.errors import UserError

    with pytest.raises(UserError, match="segmentation"):
        tc.create_spatial_index_mesh_tasks(image)


def test_group_kinds():
    assert spatial_index_group("skeleton").name == "spatial-index"
    with pytest.raises(ValueError):
        spatial_index_group("volume")
