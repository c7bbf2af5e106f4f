"""Contrast tasks for uint8/uint16 images.

- ``luminance_levels``: a sampled histogram per z-slice, stored as JSON at
  ``levels/{mip}/{z}`` in the layer (or ``levels_path``);
- ``contrast_normalize``: per slice, clip ``clip_fraction`` of the histogram
  (black left out) at each end and stretch the rest linearly over the
  dtype's range, byte for byte as the original Igneous does;
- ``clahe``: contrast-limited adaptive histogram equalization of whole xy
  slices (OpenCV's rule: tile grid, clip limit relative to the mean bin count,
  bilinear blend of the four nearest tile maps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from igneous.blockio import map_block
from igneous.grid import vec

LEVELS_DIR = "levels"


def levels_key(mip: int, z: int) -> str:
    return f"{LEVELS_DIR}/{mip}/{z}"


def sample_columns(n_columns: int, coverage: float, seed: int) -> np.ndarray:
    """Which xy chunk columns to read: ``ceil(coverage * n)`` of them (at
    least one), chosen at random but repeatably for a given seed."""
    k = min(n_columns, max(1, int(np.ceil(coverage * n_columns - 1e-9))))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_columns, size=k, replace=False))


def luminance_levels(layer_path: str, levels_path: str, mip: int, offset: Sequence[int],
                     shape: Sequence[int], coverage: float, column: Sequence[int],
                     fill_missing: bool = False) -> None:
    """Histogram each z-slice of the slab ``[offset, offset + shape)`` from a
    random ``coverage`` fraction of its xy columns (``column``-sized)."""
    import json

    from igneous.blockio import read_block
    from igneous.chunkio import open_volume
    from igneous.storage import open_store

    cv = open_volume(layer_path, mip, fill_missing=fill_missing)
    lo, size, col = vec(offset), vec(shape), vec(column)
    counts = -(-size[:2] // col[:2])
    picked = sample_columns(int(counts[0] * counts[1]), coverage, seed=int(lo[2]))
    bins = 2 ** (8 * np.dtype(cv.dtype).itemsize)
    hist = np.zeros((size[2], bins), dtype=np.int64)
    for i in picked:
        a = lo + vec((i % counts[0], i // counts[0], 0)) * col
        b = np.minimum(a + vec((col[0], col[1], size[2])), lo + size)
        img = read_block(cv, a, b, mip)[..., 0]
        for z in range(size[2]):
            hist[z] += np.bincount(img[:, :, z].ravel(), minlength=bins)
    patch = [int(col[0]), int(col[1]), 1]
    files = [
        (levels_key(mip, int(lo[2]) + z), json.dumps({
            "levels": hist[z].tolist(), "patch_size": patch, "num_patches": int(len(picked)),
            "coverage_ratio": float(len(picked) / (counts[0] * counts[1])),
        }).encode())
        for z in range(size[2])
    ]
    open_store(levels_path).put_many(files, compress="gzip", content_type="application/json")


def clip_bounds(levels: np.ndarray, clip_fraction: float) -> tuple[int, int] | None:
    """The stretch bounds (lo, hi) of a slice's histogram, the original
    Igneous's rule (measured on it as a black box; tests/compat): black (0) is
    left out; of the T voxels left, ``lo`` is one below the first value with
    more than ``clip_fraction * T`` voxels at or below it, ``hi`` one below the
    first value with more than ``(1 - clip_fraction) * T`` (the dtype's
    maximum when none has, as with ``clip_fraction`` 0). None when there is
    nothing to stretch (only black, or ``hi == lo``)."""
    levels = np.array(levels, dtype=np.int64)
    levels[0] = 0
    total = int(levels.sum())
    if total == 0:
        return None
    cum = np.cumsum(levels)
    lo = int(np.argmax(cum > clip_fraction * total)) - 1
    above = cum > (1 - clip_fraction) * total
    hi = int(np.argmax(above)) - 1 if above.any() else len(levels) - 1
    return (lo, hi) if hi > lo else None


def stretch(img: np.ndarray, lo: int, hi: int, maxval: int) -> np.ndarray:
    """``lo`` -> 0 and ``hi`` -> ``maxval`` linearly in float32 (as the original
    computes it, so ties round alike), rounded and clipped. A slice with
    ``hi <= lo`` is returned unchanged."""
    if hi <= lo:
        return img
    scaled = (img.astype(np.float32) - np.float32(lo)) * np.float32(maxval / (hi - lo))
    return np.clip(np.rint(scaled), 0, maxval).astype(img.dtype)


def contrast_normalize(src_path: str, dest_path: str, levels_path: str, mip: int,
                       offset: Sequence[int], shape: Sequence[int], clip_fraction: float = 0.01,
                       translate: Sequence[int] = (0, 0, 0), minval: int | None = None,
                       maxval: int | None = None, fill_missing: bool = False,
                       compress: str | None = "gzip", clamp_output: bool = False) -> None:
    """Stretch each z-slice of one block by the bounds its histogram gives.

    ``minval`` / ``maxval`` replace those bounds; with ``clamp_output`` (the
    original Igneous's ContrastNormalizationTask) they clip the stretched
    output instead."""
    import json

    from igneous.storage import open_store

    def normalize(img: np.ndarray, origin: np.ndarray) -> np.ndarray:
        keys = [levels_key(mip, int(origin[2]) + z) for z in range(img.shape[2])]
        found = [None if data is None else json.loads(data)
                 for _, data in open_store(levels_path).get_many(keys)]
        top = int(np.iinfo(img.dtype).max)
        out = np.empty_like(img)
        for z, (key, levels) in enumerate(zip(keys, found)):
            if levels is None:
                raise FileNotFoundError(f"{levels_path}/{key} is missing; run the histogram step")
            lo, hi = clip_bounds(levels["levels"], clip_fraction) or (None, None)
            if not clamp_output:
                lo = lo if minval is None else int(minval)
                hi = hi if maxval is None else int(maxval)
            out[:, :, z] = img[:, :, z] if lo is None or hi is None else \
                stretch(img[:, :, z], lo, hi, top)
        if clamp_output and (minval is not None or maxval is not None):
            out = np.clip(out, 0 if minval is None else int(minval),
                          top if maxval is None else int(maxval)).astype(img.dtype)
        return out

    map_block(src_path, dest_path, mip, offset, shape, normalize, translate=translate,
              fill_missing=fill_missing, compress=compress)


def _tile_maps(img: np.ndarray, grid: tuple[int, int], clip_limit: float,
               maxval: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Per-tile value maps, shape (gx, gy, maxval + 1), and the tile size."""
    gx, gy = grid
    tile = (-(-img.shape[0] // gx), -(-img.shape[1] // gy))
    pad = [(0, tile[0] * gx - img.shape[0]), (0, tile[1] * gy - img.shape[1])]
    if pad[0][1] or pad[1][1]:
        img = np.pad(img, pad, mode="reflect" if min(img.shape) > 1 else "edge")
    bins, area = maxval + 1, tile[0] * tile[1]
    limit = max(1, int(clip_limit * area / bins)) if clip_limit > 0 else None
    maps = np.empty((gx, gy, bins), dtype=np.float64)
    for i in range(gx):
        for j in range(gy):
            block = img[i * tile[0]:(i + 1) * tile[0], j * tile[1]:(j + 1) * tile[1]]
            hist = np.bincount(block.ravel(), minlength=bins).astype(np.int64)
            if limit is not None:
                excess = int(np.maximum(hist - limit, 0).sum())
                hist = np.minimum(hist, limit) + excess // bins
                residual = excess % bins
                if residual:
                    step = max(bins // residual, 1)
                    hist[np.arange(0, bins, step)[:residual]] += 1
            maps[i, j] = np.clip(np.rint(np.cumsum(hist) * (maxval / area)), 0, maxval)
    return maps, tile


def _neighbors(n: int, tile: int, tiles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For positions 0..n-1: the two nearest tile centres and the weight of the second."""
    pos = np.arange(n) / tile - 0.5
    first = np.floor(pos).astype(np.int64)
    weight = pos - first
    return np.maximum(first, 0), np.minimum(first + 1, tiles - 1), weight


def clahe_slice(img: np.ndarray, clip_limit: float, grid: tuple[int, int]) -> np.ndarray:
    """CLAHE of one 2D uint8/uint16 slice (x, y)."""
    maxval = int(np.iinfo(img.dtype).max)
    maps, tile = _tile_maps(img, grid, clip_limit, maxval)
    x1, x2, wx = _neighbors(img.shape[0], tile[0], grid[0])
    y1, y2, wy = _neighbors(img.shape[1], tile[1], grid[1])
    wx, wy = wx[:, None], wy[None, :]
    x1, x2, y1, y2 = x1[:, None], x2[:, None], y1[None, :], y2[None, :]
    top = maps[x1, y1, img] * (1 - wx) + maps[x2, y1, img] * wx
    bottom = maps[x1, y2, img] * (1 - wx) + maps[x2, y2, img] * wx
    out = top * (1 - wy) + bottom * wy
    return np.clip(np.rint(out), 0, maxval).astype(img.dtype)


def clahe(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
          clip_limit: float = 40.0, tile_grid_size: Sequence[int] = (8, 8),
          fill_missing: bool = False, compress: str | None = "gzip") -> None:
    """CLAHE of each whole xy slice in one z slab."""
    grid = (int(tile_grid_size[0]), int(tile_grid_size[1]))

    def each_slice(img: np.ndarray, _origin: object) -> np.ndarray:
        out = np.empty_like(img)
        for c in range(img.shape[3]):
            for z in range(img.shape[2]):
                out[:, :, z, c] = clahe_slice(img[:, :, z, c], clip_limit, grid)
        return out

    map_block(src_path, dest_path, mip, offset, shape, each_slice, fill_missing=fill_missing,
              compress=compress)
