"""`igneous skeleton convert`: SWC files read back by an independent parser
(CloudVolume's Skeleton.from_swc) equal the stored skeletons."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from cloudvolume import CloudVolume, Skeleton

from igneous.cli import main
from tests.volumes import BIG, make_layer


def skeleton_layer(tmp_path, sharded: bool = False) -> tuple[str, dict[int, Skeleton]]:
    data = np.zeros((8, 8, 8), np.uint64)
    url = make_layer(str(tmp_path / "seg"), data, layer_type="segmentation")
    cv = CloudVolume(url, progress=False)
    cv.info["skeletons"] = "skeletons"
    cv.commit_info()
    cv.skeleton.meta.info = {"@type": "neuroglancer_skeletons", "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
                             "vertex_attributes": [{"id": "radius", "data_type": "float32", "num_components": 1}]}
    cv.skeleton.meta.commit_info()
    rs = np.random.RandomState(0)
    skels = {}
    for i, label in enumerate([7, 123, int(BIG) + 5]):
        n = 5 + i
        verts = np.cumsum(rs.rand(n, 3) * 40, axis=0).astype(np.float32)
        edges = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1).astype(np.uint32)
        skel = Skeleton(verts, edges, radii=rs.rand(n).astype(np.float32) * 10, segid=label)
        cv.skeleton.upload(skel)
        skels[label] = skel
    return url, skels


def test_convert_all_labels_and_some(tmp_path):
    url, skels = skeleton_layer(tmp_path)
    out = tmp_path / "swc"
    r = CliRunner().invoke(main, ["skeleton", "convert", url, str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.swc" for k in skels)
    for label, skel in skels.items():
        got = Skeleton.from_swc((out / f"{label}.swc").read_text())
        np.testing.assert_allclose(got.vertices, skel.vertices, atol=1e-3)
        np.testing.assert_allclose(got.cable_length(), skel.cable_length(), rtol=1e-5)
        np.testing.assert_allclose(got.radii, skel.radii, atol=1e-3)
    r = CliRunner().invoke(main, ["skeleton", "convert", url, str(tmp_path / "two"), "7,123"])
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "two").iterdir()) == ["123.swc", "7.swc"]


def test_convert_refuses_clearly(tmp_path):
    url, _ = skeleton_layer(tmp_path)
    r = CliRunner().invoke(main, ["skeleton", "convert", url, str(tmp_path / "o"), "7,999"])
    assert r.exit_code != 0 and "1 of 2 labels have no skeleton" in r.output
    assert (tmp_path / "o" / "7.swc").exists()
    plain = make_layer(str(tmp_path / "plain"), np.zeros((4, 4, 4), np.uint32), layer_type="segmentation")
    r = CliRunner().invoke(main, ["skeleton", "convert", plain, str(tmp_path / "p")])
    assert r.exit_code != 0 and "has no skeletons" in r.output
