"""Quantization to uint8 checked against numpy's rescaling of the source."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cloudvolume import CloudVolume

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.worker import run_local
from tests.volumes import make_layer, read_mip

OFFSET = (3, 5, 7)
RES = (4, 6, 40)
RNG = np.random.default_rng(3)


def expected(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    y = (x.astype(np.float64) - lo) / (hi - lo) * 255
    y = np.where(np.isnan(y), 0, y)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def multichannel_layer(path, data, chunk=(16, 16, 4)) -> str:
    info = CloudVolume.create_new_info(data.shape[3], "image", str(data.dtype), "raw", list(RES),
                                       list(OFFSET), list(data.shape[:3]), chunk_size=list(chunk))
    cv = CloudVolume(f"file://{path}", info=info, progress=False)
    cv.commit_info()
    lo, hi = np.array(OFFSET), np.array(OFFSET) + np.array(data.shape[:3])
    cv[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = data
    return f"file://{path}"


def test_affinity_channel_and_range(tmp_path):
    data = np.asfortranarray(RNG.random((37, 29, 11, 3), dtype=np.float32) * 1.2 - 0.1)
    data[4, 4, 4, 1] = np.nan
    url = multichannel_layer(tmp_path / "aff", data)
    plan = tc.create_quantize_tasks(url, str(tmp_path / "q"), channel=1, value_range=(0.2, 0.8))
    run_local([plan], progress=False)
    got, off = read_mip(f"file://{tmp_path / 'q'}", 0)
    info = json.loads((tmp_path / "q" / "info").read_text())
    assert info["data_type"] == "uint8" and info["num_channels"] == 1 and tuple(off) == OFFSET
    assert np.array_equal(got, expected(data[..., 1], 0.2, 0.8))
    assert got[4, 4, 4] == 0


def test_float_default_range(tmp_path):
    data = np.asfortranarray(RNG.random((20, 17, 6), dtype=np.float32))
    url = make_layer(str(tmp_path / "p"), data, offset=OFFSET, resolution=RES)
    run_local([tc.create_quantize_tasks(url, str(tmp_path / "q"), shape=(32, 16, 8))], progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'q'}", 0)
    assert np.array_equal(got, expected(data, 0.0, 1.0))


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_wide_integers(tmp_path, dtype):
    info = np.iinfo(dtype)
    data = np.asfortranarray(RNG.integers(info.min, info.max, (23, 19, 5), endpoint=True).astype(dtype))
    url = make_layer(str(tmp_path / "w"), data, offset=OFFSET, resolution=RES, layer_type="image")
    run_local([tc.create_quantize_tasks(url, str(tmp_path / "q"))], progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'q'}", 0)
    assert np.array_equal(got, expected(data, float(info.min), float(info.max)))


def test_all_zero_volume(tmp_path):
    url = make_layer(str(tmp_path / "z"), np.zeros((9, 7, 3), dtype=np.float32, order="F"))
    run_local([tc.create_quantize_tasks(url, str(tmp_path / "q"))], progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'q'}", 0)
    assert got.dtype == np.uint8 and not got.any()


def test_bad_input(tmp_path):
    u8 = make_layer(str(tmp_path / "u8"), np.zeros((8, 8, 4), dtype=np.uint8, order="F"))
    with pytest.raises(UserError, match="already uint8"):
        tc.create_quantize_tasks(u8, str(tmp_path / "q"))
    seg = make_layer(str(tmp_path / "seg"), np.ones((8, 8, 4), dtype=np.uint64, order="F"))
    with pytest.raises(UserError, match="segmentation"):
        tc.create_quantize_tasks(seg, str(tmp_path / "q"))
    flt = make_layer(str(tmp_path / "f"), np.ones((8, 8, 4), dtype=np.float32, order="F"))
    with pytest.raises(UserError, match="channel 2"):
        tc.create_quantize_tasks(flt, str(tmp_path / "q"), channel=2)
    with pytest.raises(UserError, match="MIN < MAX"):
        tc.create_quantize_tasks(flt, str(tmp_path / "q"), value_range=(1, 0))
    assert not (tmp_path / "q").exists()


def test_cli(tmp_path, igneous):
    data = np.asfortranarray(RNG.random((25, 18, 7), dtype=np.float32) * 10)
    url = make_layer(str(tmp_path / "p"), data, offset=OFFSET, resolution=RES)
    queue = str(tmp_path / "queue")
    igneous("image", "quantize", url, f"file://{tmp_path / 'q'}", "--range", "2,8", "--queue",
            queue, check=True)
    igneous("execute", "-x", "-q", queue, check=True)
    got, _ = read_mip(f"file://{tmp_path / 'q'}", 0)
    assert np.array_equal(got, expected(data, 2.0, 8.0))
    r = igneous("image", "quantize", url, f"file://{tmp_path / 'q2'}", "--range", "x")
    assert r.returncode != 0 and "--range" in r.stderr and "Traceback" not in r.stderr
