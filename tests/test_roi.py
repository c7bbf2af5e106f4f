"""Tissue ROIs: every tissue voxel at mip 0 lies inside a stored box."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cloudvolume import CloudVolume

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.task_creation.image import plan_downsample
from igneous.worker import run_local
from tests.volumes import make_layer

OFFSET = (5, 9, 3)
RES = (4, 6, 40)


def blobs(shape, boxes, value=180) -> np.ndarray:
    """Background with solid bright boxes (given half-open, array indices)."""
    img = np.zeros(shape, dtype=np.uint8, order="F")
    for lo, hi in boxes:
        img[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = value
    return img


def inside(points: np.ndarray, rois) -> np.ndarray:
    """Which of the (n, 3) mip-0 voxel points lie in some inclusive roi."""
    hit = np.zeros(len(points), dtype=bool)
    for r in rois:
        lo, hi = np.array(r[:3]), np.array(r[3:])
        hit |= np.all((points >= lo) & (points <= hi), axis=1)
    return hit


def tissue_points(img: np.ndarray, offset=OFFSET) -> np.ndarray:
    return np.argwhere(img > 0) + np.array(offset)


def stored_rois(tmp_path, name="img"):
    return json.loads((tmp_path / name / "info").read_text())["scales"][0].get("rois")


def test_boxes_contain_all_tissue_with_pooling(tmp_path):
    shape = (203, 157, 13)
    img = blobs(shape, [((10, 12, 0), (60, 50, 5)), ((120, 90, 6), (199, 151, 13)),
                        ((150, 20, 2), (170, 41, 9))])
    url = make_layer(str(tmp_path / "img"), img, offset=OFFSET, resolution=RES, chunk=(32, 32, 4))
    run_local(plan_downsample(url, 0, 2), progress=False)  # lowest mip is 4x4x1 coarser
    rois = tc.compute_rois(url, dust_threshold=0, max_axial_length=20)  # pooled again in memory
    assert rois == stored_rois(tmp_path)
    assert 1 <= len(rois) <= 3
    assert inside(tissue_points(img), rois).all()
    start, stop = np.array(OFFSET), np.array(OFFSET) + np.array(shape)
    for r in rois:
        assert np.all(np.array(r[:3]) >= start) and np.all(np.array(r[3:]) < stop)
        assert np.all(np.array(r[:3]) <= np.array(r[3:]))
    # boxes are useful: most of the empty volume lies outside them
    empty = np.argwhere(img[::4, ::4, :] == 0) * np.array([4, 4, 1]) + np.array(OFFSET)
    assert inside(empty, rois).mean() < 0.6
    # CloudVolume reads them from the info file
    cv = CloudVolume(url, progress=False)
    assert len(cv.meta.rois) == len(rois)


def test_z_step_splits_drifting_tissue(tmp_path):
    shape = (64, 64, 12)
    img = blobs(shape, [((2, 2, 0), (20, 20, 6)), ((40, 40, 6), (62, 62, 12))])
    url = make_layer(str(tmp_path / "img"), img, offset=OFFSET, resolution=RES, chunk=(32, 32, 4))
    whole = tc.compute_rois(url, dust_threshold=0)
    stepped = tc.compute_rois(url, dust_threshold=0, z_step=6)
    assert inside(tissue_points(img), stepped).all()
    assert len(stepped) == 2
    for r in stepped:  # each box stays within its bundle of 6 slices
        assert (r[2] - OFFSET[2]) // 6 == (r[5] - OFFSET[2]) // 6
    assert inside(tissue_points(img), whole).all()


def test_dust_and_faint_voxels(tmp_path):
    shape = (50, 40, 6)
    img = blobs(shape, [((5, 5, 1), (25, 25, 5))])
    img[40, 30, 3] = 200  # a speck
    img[45:49, 2:6, 0:6] = 4  # faint haze
    url = make_layer(str(tmp_path / "img"), img, offset=OFFSET, resolution=RES, chunk=(32, 32, 4))
    speck = np.array([[40 + OFFSET[0], 30 + OFFSET[1], 3 + OFFSET[2]]])
    haze = np.array([[46 + OFFSET[0], 3 + OFFSET[1], 2 + OFFSET[2]]])
    blob = tissue_points(blobs(shape, [((5, 5, 1), (25, 25, 5))]))

    rois = tc.compute_rois(url, dust_threshold=0)
    assert inside(speck, rois).all() and inside(haze, rois).all()
    rois = tc.compute_rois(url, dust_threshold=10, suppress_faint_voxels=10)
    assert inside(blob, rois).all()
    assert not inside(speck, rois).any() and not inside(haze, rois).any()


def test_recompute_replaces_old_rois(tmp_path):
    img = blobs((40, 40, 4), [((2, 2, 0), (10, 10, 4))])
    url = make_layer(str(tmp_path / "img"), img, offset=OFFSET, resolution=RES, chunk=(16, 16, 4))
    tc.compute_rois(url, dust_threshold=0)
    img[30:38, 30:38, :] = 150  # new tissue outside the stored box
    cv = CloudVolume(url, progress=False)
    cv[OFFSET[0]:OFFSET[0] + 40, OFFSET[1]:OFFSET[1] + 40, OFFSET[2]:OFFSET[2] + 4] = img
    rois = tc.compute_rois(url, dust_threshold=0)
    assert len(rois) == 2 and rois == stored_rois(tmp_path)
    assert inside(tissue_points(img), rois).all()


def test_all_background_gives_no_boxes(tmp_path):
    url = make_layer(str(tmp_path / "img"), np.zeros((31, 17, 5), dtype=np.uint8, order="F"),
                     offset=OFFSET, resolution=RES)
    assert tc.compute_rois(url) == []
    assert stored_rois(tmp_path) == []


def test_bad_input(tmp_path):
    seg = make_layer(str(tmp_path / "seg"), np.ones((8, 8, 4), dtype=np.uint64, order="F"))
    with pytest.raises(UserError, match="segmentation"):
        tc.compute_rois(seg)
    url = make_layer(str(tmp_path / "img"), np.ones((8, 8, 4), dtype=np.uint8, order="F"))
    with pytest.raises(UserError, match="max_axial_length"):
        tc.compute_rois(url, max_axial_length=0)
    assert stored_rois(tmp_path) is None


def test_cli(tmp_path, igneous):
    img = blobs((60, 44, 8), [((3, 4, 0), (30, 20, 8))])
    url = make_layer(str(tmp_path / "img"), img, offset=OFFSET, resolution=RES, chunk=(16, 16, 4))
    igneous("image", "roi", url, "--z-step", "4", "--dust", "0", "--max-axial-len", "32",
            check=True)
    rois = stored_rois(tmp_path)
    assert len(rois) == 2 and inside(tissue_points(img), rois).all()
    r = igneous("image", "roi", url, "--max-axial-len", "0")
    assert r.returncode != 0 and "Traceback" not in r.stderr
