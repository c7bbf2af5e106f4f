"""Contrast: per-slice histograms, clipped stretching and CLAHE, each checked
against numpy computations of the same rule on the whole array."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.sample import smooth_image
from igneous.worker import run_local
from tests.volumes import make_layer, read_mip

RNG = np.random.default_rng(11)
OFFSET = (3, 5, 7)
RES = (4, 6, 40)


def run(plan):
    run_local([plan], progress=False)


def image(shape=(45, 37, 11), dtype=np.uint8, lo=40, hi=140):
    data = RNG.integers(lo, hi, shape)
    if dtype == np.uint16:
        data = data * 97
    return np.asfortranarray(data.astype(dtype))


def levels_file(root, mip, z) -> dict:
    path = os.path.join(root, "levels", str(mip), str(z))
    if os.path.exists(path + ".gz"):
        with gzip.open(path + ".gz") as f:
            return json.load(f)
    with open(path) as f:
        return json.load(f)


def layer(tmp_path, data, name="img", **kw):
    kw = {"offset": OFFSET, "resolution": RES, "chunk": (16, 16, 4), **kw}
    return make_layer(str(tmp_path / name), data, **kw)


def float32_stretch(img: np.ndarray, lo: int, hi: int) -> np.ndarray:
    top = np.iinfo(img.dtype).max
    scaled = (img.astype(np.float32) - np.float32(lo)) * np.float32(top / (hi - lo))
    return np.clip(np.rint(scaled), 0, top).astype(img.dtype)


def expected_stretch(data: np.ndarray, clip: float) -> np.ndarray:
    """Per slice, from the sorted values other than black (T of them):
    lo = vals[floor(clip*T)] - 1, hi = vals[floor((1-clip)*T)] - 1 (the
    dtype's maximum past the end); a slice with only black or hi == lo is
    unchanged; else (x - lo) * max / (hi - lo) in float32, rounded and clipped
    (the original Igneous's rule, measured on it: tests/compat)."""
    top = np.iinfo(data.dtype).max
    out = np.empty_like(data)
    for z in range(data.shape[2]):
        vals = np.sort(data[:, :, z].ravel())
        vals = vals[vals > 0]
        out[:, :, z] = data[:, :, z]
        if vals.size == 0:
            continue
        lo = int(vals[int(np.floor(clip * vals.size))]) - 1
        j = int(np.floor((1 - clip) * vals.size))
        hi = int(vals[j]) - 1 if j < vals.size else top
        if hi > lo:
            out[:, :, z] = float32_stretch(data[:, :, z], lo, hi)
    return out


def test_full_coverage_histogram_is_exact(tmp_path):
    data = image()
    url = layer(tmp_path, data)
    run(tc.create_luminance_levels_tasks(url, coverage_factor=1.0))
    for z in range(data.shape[2]):
        got = levels_file(tmp_path / "img", 0, OFFSET[2] + z)
        assert got["levels"] == np.bincount(data[:, :, z].ravel(), minlength=256).tolist()


def test_partial_coverage_samples_a_subset(tmp_path):
    data = image((70, 50, 9))
    url = layer(tmp_path, data)
    plan = tc.create_luminance_levels_tasks(url, coverage_factor=0.3, shape=(16, 16, 4))
    run(plan)
    first = [levels_file(tmp_path / "img", 0, OFFSET[2] + z) for z in range(9)]
    run(plan)  # idempotent: the same sample again
    assert first == [levels_file(tmp_path / "img", 0, OFFSET[2] + z) for z in range(9)]
    columns = int(np.ceil(70 / 16) * np.ceil(50 / 16))
    for z, got in enumerate(first):
        full = np.bincount(data[:, :, z].ravel(), minlength=256)
        levels = np.array(got["levels"])
        assert np.all(levels <= full)
        assert 0 < levels.sum() < full.sum()
        assert got["num_patches"] == int(np.ceil(0.3 * columns))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_equalize_matches_numpy(tmp_path, dtype):
    data = image(dtype=dtype)
    data[:, :, 4] = 77  # a flat slice stays as it is
    url = layer(tmp_path, data)
    run(tc.create_luminance_levels_tasks(url, coverage_factor=1.0))
    run(tc.create_contrast_normalization_tasks(url, str(tmp_path / "eq"), clip_fraction=0.05))
    got, off = read_mip(f"file://{tmp_path / 'eq'}", 0)
    assert tuple(off) == OFFSET
    expected = expected_stretch(data, 0.05)
    assert np.array_equal(got, expected)
    top = np.iinfo(dtype).max
    assert got[:, :, 0].max() == top and got[:, :, 0].min() == 0


def test_equalize_translate_and_minmax(tmp_path):
    data = image()
    url = layer(tmp_path, data)
    run(tc.create_luminance_levels_tasks(url, coverage_factor=1.0))
    run(tc.create_contrast_normalization_tasks(url, str(tmp_path / "eq"), translate=(0, 0, 5),
                                               minval=50, maxval=130))
    got, off = read_mip(f"file://{tmp_path / 'eq'}", 0)
    assert tuple(off) == (OFFSET[0], OFFSET[1], OFFSET[2] + 5)
    assert np.array_equal(got, float32_stretch(data, 50, 130))


def test_all_background_volume(tmp_path):
    data = np.zeros((33, 21, 5), dtype=np.uint8, order="F")
    url = layer(tmp_path, data)
    run(tc.create_luminance_levels_tasks(url, coverage_factor=1.0))
    assert levels_file(tmp_path / "img", 0, OFFSET[2])["levels"][0] == 33 * 21
    run(tc.create_contrast_normalization_tasks(url, str(tmp_path / "eq")))
    run(tc.create_clahe_tasks(url, str(tmp_path / "cl")))
    got, _ = read_mip(f"file://{tmp_path / 'eq'}", 0)
    assert not got.any()
    # clipped CLAHE lifts a flat slice off 0, as OpenCV's does: same rule
    got, _ = read_mip(f"file://{tmp_path / 'cl'}", 0)
    assert np.array_equal(got[:, :, 0], clahe_reference(data[:, :, 0], 40.0, (8, 8)))
    assert np.all(got == got[0, 0, 0])


def test_equalize_needs_histogram_first(tmp_path):
    url = layer(tmp_path, image())
    with pytest.raises(UserError, match="no histogram"):
        tc.create_contrast_normalization_tasks(url, str(tmp_path / "eq"))
    assert not (tmp_path / "eq").exists()


@pytest.mark.parametrize("coverage", [0, -0.1, 1.5])
def test_coverage_outside_unit_interval(tmp_path, coverage):
    url = layer(tmp_path, image())
    with pytest.raises(UserError, match="coverage"):
        tc.create_luminance_levels_tasks(url, coverage_factor=coverage)
    assert not (tmp_path / "img" / "levels").exists()


def test_contrast_refuses_segmentation_and_floats(tmp_path):
    seg = make_layer(str(tmp_path / "seg"), np.ones((8, 8, 4), dtype=np.uint64, order="F"))
    with pytest.raises(UserError, match="segmentation"):
        tc.create_luminance_levels_tasks(seg, coverage_factor=1.0)
    with pytest.raises(UserError, match="segmentation"):
        tc.create_clahe_tasks(seg, str(tmp_path / "out"))
    flt = make_layer(str(tmp_path / "flt"), np.ones((8, 8, 4), dtype=np.float32, order="F"))
    with pytest.raises(UserError, match="float32"):
        tc.create_luminance_levels_tasks(flt, coverage_factor=1.0)
    assert not (tmp_path / "out").exists()


# -- CLAHE --------------------------------------------------------------------

def clahe_reference(img: np.ndarray, clip_limit: float, grid) -> np.ndarray:
    """CLAHE written out plainly, pixel by pixel (OpenCV's definition):
    reflect-pad to whole tiles, clip each tile histogram at
    max(1, int(clip * area / bins)) and spread the excess evenly (remainder
    one per bin at a regular stride), map by the scaled cumulative count,
    blend the four nearest tile centres bilinearly."""
    top = int(np.iinfo(img.dtype).max)
    bins = top + 1
    nx, ny = img.shape
    tx, ty = -(-nx // grid[0]), -(-ny // grid[1])
    padded = np.pad(img, ((0, tx * grid[0] - nx), (0, ty * grid[1] - ny)), mode="reflect")
    area = tx * ty
    maps = {}
    for i in range(grid[0]):
        for j in range(grid[1]):
            hist = [0] * bins
            for v in padded[i * tx:(i + 1) * tx, j * ty:(j + 1) * ty].ravel():
                hist[int(v)] += 1
            if clip_limit > 0:
                limit = max(1, int(clip_limit * area / bins))
                excess = sum(max(h - limit, 0) for h in hist)
                hist = [min(h, limit) + excess // bins for h in hist]
                rest = excess % bins
                stride = max(bins // rest, 1) if rest else 1
                b = 0
                while rest > 0 and b < bins:
                    hist[b] += 1
                    rest -= 1
                    b += stride
            total, lut = 0, []
            for h in hist:
                total += h
                lut.append(min(top, max(0, round(total * top / area))))
            maps[i, j] = lut
    out = np.empty_like(img)
    for x in range(nx):
        fx = x / tx - 0.5
        x1 = int(np.floor(fx))
        ax = fx - x1
        x2 = min(x1 + 1, grid[0] - 1)
        x1 = max(x1, 0)
        for y in range(ny):
            fy = y / ty - 0.5
            y1 = int(np.floor(fy))
            ay = fy - y1
            y2 = min(y1 + 1, grid[1] - 1)
            y1 = max(y1, 0)
            v = int(img[x, y])
            value = ((maps[x1, y1][v] * (1 - ax) + maps[x2, y1][v] * ax) * (1 - ay)
                     + (maps[x1, y2][v] * (1 - ax) + maps[x2, y2][v] * ax) * ay)
            out[x, y] = min(top, max(0, round(value)))
    return out


@pytest.mark.parametrize("clip,grid", [(2.0, (3, 2)), (40.0, (4, 5))])
def test_clahe_matches_plain_reference(tmp_path, clip, grid):
    data = smooth_image((48, 40, 8), seed=3)[:41, :35, :5]
    data = np.asfortranarray(data // 2 + 30)  # low contrast to spread
    url = layer(tmp_path, data, chunk=(16, 16, 4))
    run(tc.create_clahe_tasks(url, str(tmp_path / "cl"), clip_limit=clip, tile_grid_size=grid))
    got, off = read_mip(f"file://{tmp_path / 'cl'}", 0)
    assert tuple(off) == OFFSET
    for z in range(data.shape[2]):
        assert np.array_equal(got[:, :, z], clahe_reference(data[:, :, z], clip, grid)), z


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_clahe_one_tile_no_limit_is_global_equalization(tmp_path, dtype):
    data = image((29, 23, 6), dtype=dtype)
    url = layer(tmp_path, data)
    run(tc.create_clahe_tasks(url, str(tmp_path / "cl"), clip_limit=0, tile_grid_size=(1, 1)))
    got, _ = read_mip(f"file://{tmp_path / 'cl'}", 0)
    top = np.iinfo(dtype).max
    for z in range(data.shape[2]):
        vals = np.sort(data[:, :, z].ravel())
        rank = np.searchsorted(vals, data[:, :, z], side="right")  # voxels <= v
        assert np.array_equal(got[:, :, z], np.rint(rank * top / vals.size).astype(dtype))


def test_clahe_bad_grid(tmp_path):
    url = layer(tmp_path, image((12, 10, 4)))
    with pytest.raises(UserError, match="tile grid"):
        tc.create_clahe_tasks(url, str(tmp_path / "cl"), tile_grid_size=(16, 2))
    with pytest.raises(UserError, match="tile grid"):
        tc.create_clahe_tasks(url, str(tmp_path / "cl"), tile_grid_size=(0, 2))
    assert not (tmp_path / "cl").exists()


# -- CLI ----------------------------------------------------------------------

def test_cli_histogram_equalize_through_queue(tmp_path, igneous):
    data = image((40, 30, 9))
    url = layer(tmp_path, data)
    queue = str(tmp_path / "queue")
    igneous("image", "contrast", "histogram", url, "--coverage", "1", "--queue", queue, check=True)
    igneous("execute", "-x", "-q", queue, check=True)
    igneous("image", "contrast", "equalize", url, f"file://{tmp_path / 'eq'}", "--clip-fraction",
            "0.02", check=True)
    got, _ = read_mip(f"file://{tmp_path / 'eq'}", 0)
    assert np.array_equal(got, expected_stretch(data, 0.02))
    igneous("image", "contrast", "clahe", url, f"file://{tmp_path / 'cl'}", "--tile-grid-size",
            "1,1", "--clip-limit", "0", check=True)
    assert (tmp_path / "cl" / "info").exists()


def test_cli_errors_are_one_line(tmp_path, igneous):
    url = layer(tmp_path, image((20, 20, 4)))
    r = igneous("image", "contrast", "histogram", url, "--coverage", "2")
    assert r.returncode != 0 and "coverage" in r.stderr and "Traceback" not in r.stderr
    r = igneous("image", "contrast", "equalize", url, f"file://{tmp_path / 'eq'}")
    assert r.returncode != 0 and "histogram" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "eq").exists()


def test_clahe_of_a_region_uses_the_region_slices(tmp_path):
    data = image((60, 44, 8))
    url = layer(tmp_path, data)
    lo, hi = np.array([13, 9, 8]), np.array([54, 40, 13])  # mip 0 voxels, not chunk aligned
    run(tc.create_clahe_tasks(url, str(tmp_path / "cl"), clip_limit=3.0, tile_grid_size=(2, 3),
                              bounds=(lo, hi)))
    got, off = read_mip(f"file://{tmp_path / 'cl'}", 0)
    assert np.array_equal(off, lo)
    a, b = lo - np.array(OFFSET), hi - np.array(OFFSET)
    crop = data[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
    for z in range(crop.shape[2]):
        assert np.array_equal(got[:, :, z], clahe_reference(crop[:, :, z], 3.0, (2, 3)))


def test_equalize_clip_boundary_is_exact(tmp_path):
    """Exactly clip_fraction * n voxels at each end: those are clipped; the
    bounds are one below the next values (the original's rule, expected_stretch):
    the lowest value left maps just above 0, the top clip value to the top."""
    data = image((40, 25, 3), lo=30, hi=200)  # 1000 voxels per slice
    flat = data.reshape(-1, 3, order="F")
    flat[:50, 1] = 10  # exactly 5% at the bottom of slice 1 ...
    flat[50:100, 1] = 250  # ... and at the top
    data = np.asfortranarray(flat.reshape(data.shape, order="F"))
    url = layer(tmp_path, data)
    run(tc.create_luminance_levels_tasks(url, coverage_factor=1.0))
    run(tc.create_contrast_normalization_tasks(url, str(tmp_path / "eq"), clip_fraction=0.05))
    got, _ = read_mip(f"file://{tmp_path / 'eq'}", 0)
    assert np.array_equal(got, expected_stretch(data, 0.05))
    assert np.all(got[:, :, 1][data[:, :, 1] == 10] == 0)
    rest = data[:, :, 1][(data[:, :, 1] != 10) & (data[:, :, 1] != 250)]
    lo, hi = int(rest.min()) - 1, 249
    assert np.all(got[:, :, 1][data[:, :, 1] == rest.min()] == round(255 / (hi - lo)))
    assert np.all(got[:, :, 1][data[:, :, 1] == 250] == 255)
