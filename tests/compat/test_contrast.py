"""LuminanceLevelsTask then ContrastNormalizationTask with the original's
keywords produce the original's bytes: checked against an independent numpy
computation of the rule measured on the reference (always), and against the
reference itself draining the same queue (when .bench/reference exists)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.compat.helpers import OFFSET, REFERENCE_READY, SHAPE, make_layer, read
from tests.test_contrast import expected_stretch

# the original's keywords, with clip fractions and output ranges that matter
KEYWORDS = [
    dict(clip_fraction=0.01),
    dict(clip_fraction=0.0),
    dict(clip_fraction=0.05, minval=30, maxval=200),
    dict(clip_fraction=0.0, minval=50),
    dict(clip_fraction=0.02, maxval=150),
]


def contrast_image(dtype=np.uint8, seed: int = 31) -> np.ndarray:
    """Grey values in a band, a black corner, a few top values, a flat slice,
    a slice of one value and black, and an all-black slice."""
    rng = np.random.default_rng(seed)
    top = int(np.iinfo(dtype).max)
    lo, hi = (40, 168) if dtype == np.uint8 else (1000, 4000)
    img = rng.integers(lo, hi, size=SHAPE).astype(dtype)
    img[:10, :9, :] = 0
    img[20:22, 5:7, 1] = top
    img[:, :, 5] = lo + 7
    img[:, :, 6] = 0
    img[3:5, 3:5, 6] = lo
    img[:, :, 8] = 0
    return np.asfortranarray(img)


def expected(data: np.ndarray, kw: dict) -> np.ndarray:
    """The original's rule: the histogram stretch (expected_stretch), then the
    output clipped to minval / maxval."""
    out = expected_stretch(data, kw["clip_fraction"])
    if "minval" in kw or "maxval" in kw:
        out = np.clip(out, kw.get("minval", 0), kw.get("maxval", np.iinfo(data.dtype).max))
    return out.astype(data.dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_contrast_classes_match_numpy(tmp_path, dtype):
    import igneous.task_creation as tc
    from igneous.tasks import ContrastNormalizationTask, LuminanceLevelsTask

    data = contrast_image(dtype)
    src = make_layer(tmp_path / "src", data)
    LuminanceLevelsTask(src_path=src, levels_path=None, shape=SHAPE, offset=OFFSET,
                        coverage_factor=1.0, mip=0).execute()
    for i, kw in enumerate(KEYWORDS):
        dest = f"file://{tmp_path / f'eq{i}'}"
        tc.create_contrast_normalization_tasks(src, dest)  # the destination's info
        ContrastNormalizationTask(src_path=src, dest_path=dest, levels_path=None, shape=SHAPE,
                                  offset=OFFSET, mip=0, fill_missing=False, translate=(0, 0, 0),
                                  **{"minval": None, "maxval": None, **kw}).execute()
        assert np.array_equal(read(dest), expected(data, kw)), kw


@pytest.mark.skipif(not REFERENCE_READY, reason="no reference venv (.bench/reference)")
def test_contrast_queue_equals_the_reference(tmp_path):
    """The reference's planners fill the histogram queue and a normalization
    queue per keyword set; ours drains one copy and the reference another:
    the outputs are byte for byte equal, and equal to numpy."""
    from tests.compat.test_reference_queues import drain_both, fill, ours, reference

    data = contrast_image(np.uint8, seed=32)
    src = tmp_path / "src"
    make_layer(src, data)
    q = tmp_path / "levels-q"
    fill(tmp_path, f"tq.insert(tc.create_luminance_levels_tasks('file://{src}', "
         "coverage_factor=1.0, shape=None, offset=(0,0,0), mip=0))", f"fq://{q}")
    src2 = drain_both(tmp_path, src, q)
    covered = tuple(slice(0, s - o) for s, o in zip(SHAPE[:2], OFFSET[:2]))  # [0, size): the spec's offset
    for z in range(SHAPE[2]):  # the histograms agree (both cover [0, size) of each slice)
        mine, theirs = (Path(p) / "levels" / "0" / str(OFFSET[2] + z) for p in (src, src2))
        assert read_levels(mine) == read_levels(theirs) == np.bincount(
            data[covered + (z,)].ravel(), minlength=256).tolist()
    plans = "\n".join(  # one queue holding every keyword set's tasks
        f"tq.insert(tc.create_contrast_normalization_tasks('file://{src}', 'file://{tmp_path}/eq{i}', "
        "shape=None, mip=0, fill_missing=False, translate=(0,0,0), "
        + ", ".join(f"{k}={v!r}" for k, v in kw.items()) + "))"
        for i, kw in enumerate(KEYWORDS))
    q = tmp_path / "eq-q"
    fill(tmp_path, plans.replace("\n", "\n        "), f"fq://{q}")
    q2 = tmp_path / "eq-q-ref"  # the same tasks writing twins eqN-ref of the destinations
    shutil.copytree(q, q2)
    for f in (q2 / "queue").iterdir():
        f.write_text(re.sub(r'(/eq\d+)"', r'\1-ref"', f.read_text()))
    for i in range(len(KEYWORDS)):
        shutil.copytree(tmp_path / f"eq{i}", tmp_path / f"eq{i}-ref")
    ours(f"fq://{q}")
    reference(f"fq://{q2}", cwd=tmp_path)
    for i, kw in enumerate(KEYWORDS):
        got = read(f"file://{tmp_path}/eq{i}")
        assert np.array_equal(got, read(f"file://{tmp_path}/eq{i}-ref")), kw
        want = expected(data[covered], kw)  # the levels cover [0, size): the bounds from there
        assert np.array_equal(got[covered], want), kw


def read_levels(path: Path) -> list[int]:
    import gzip
    import json

    for p in (path, path.with_name(path.name + ".gz")):
        if p.exists():
            raw = p.read_bytes()
            return json.loads(gzip.decompress(raw) if p.suffix == ".gz" else raw)["levels"]
    raise AssertionError(f"no levels file {path}")
