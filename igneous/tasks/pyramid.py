"""Pooling for downsample and transfer: pool a block into coarser mips
(``pool``) and build a pyramid from a source block (``build_pyramid``, over
igneous.blockio's reads and writes).

Pooling rule (all methods): each level pools windows of ``factor`` voxels;
where a window runs past the edge of the data, the edge voxel is repeated
to fill it. Averages keep full-precision sums across levels and floor once at
the end (tinybrain's rule), so mip k is the floored mean of its whole
``factor^k`` block in the interior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from igneous.blockio import BlockVolume, pad_low, read_block, write_region
from igneous.errors import UserError
from igneous.grid import Coords, Vec, clip, is_empty, vec

METHODS = ("auto", "avg", "mode", "min", "max", "striding")


def resolve_method(method: str, layer_type: str) -> str:
    if method not in METHODS:
        raise UserError(f"unknown downsample method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        return "mode" if layer_type == "segmentation" else "avg"
    return method


def pool(img: np.ndarray, factor: Coords, num_mips: int, method: str,
         sparse: bool = False) -> list[np.ndarray]:
    """Mips 1..num_mips of a 4D (x, y, z, channel) Fortran-ordered block."""
    import tinybrain

    if num_mips <= 0:
        return []
    factor = tuple(int(f) for f in factor)
    if method == "avg":
        whole = all(s % f**num_mips == 0 for s, f in zip(img.shape[:3], factor))
        if whole:  # tinybrain is exact on whole windows, not on ragged edges
            return list(tinybrain.downsample_with_averaging(img, factor, num_mips=num_mips,
                                                            sparse=sparse))
        return _average_ragged(img, factor, num_mips, sparse)
    if method == "mode":
        per_channel = [
            tinybrain.downsample_segmentation(np.asfortranarray(img[..., c]), factor,
                                              sparse=sparse, num_mips=num_mips)
            for c in range(img.shape[3])
        ]
        return [np.stack([ch[i] for ch in per_channel], axis=3) for i in range(num_mips)]
    if method == "striding":
        out, cur = [], img
        for _ in range(num_mips):
            cur = cur[:: factor[0], :: factor[1], :: factor[2]]
            out.append(np.asfortranarray(cur))
        return out
    if method in ("min", "max"):
        reduce = np.minimum if method == "min" else np.maximum
        out, cur = [], img
        for _ in range(num_mips):
            cur = _reduce_windows(cur, factor, reduce)
            out.append(cur)
        return out
    raise UserError(f"unknown downsample method {method!r}")


def _average_ragged(img: np.ndarray, factor: Sequence[int], num_mips: int,
                    sparse: bool) -> list[np.ndarray]:
    """Average pooling for blocks cut by the volume edge: exact sums carried
    across levels, edge voxels repeated to fill windows, floored at the end."""
    floating = img.dtype.kind == "f"
    sums = img.astype(np.float64 if floating else np.int64)
    counts = (img != 0).astype(np.int64) if sparse else None
    out = []
    for level in range(1, num_mips + 1):
        sums = _reduce_windows(sums, factor, np.add)
        if sparse:
            assert counts is not None
            counts = _reduce_windows(counts, factor, np.add)
            safe = np.maximum(counts, 1)
            mean = sums / safe if floating else sums // safe
        else:
            n = int(np.prod(factor)) ** level
            mean = sums / n if floating else sums // n
        out.append(np.asfortranarray(mean.astype(img.dtype)))
    return out


def _reduce_windows(img: np.ndarray, factor: Sequence[int],
                    reduce: np.ufunc) -> np.ndarray:
    pad = [(0, (-s) % f) for s, f in zip(img.shape[:3], factor)] + [(0, 0)]
    if any(p[1] for p in pad):
        img = np.pad(img, pad, mode="edge")
    sx, sy, sz, c = img.shape
    fx, fy, fz = factor
    # Fortran order: the index within a window varies fastest, so it comes first
    blocks = img.reshape(fx, sx // fx, fy, sy // fy, fz, sz // fz, c, order="F")
    out = reduce.reduce(reduce.reduce(reduce.reduce(blocks, axis=4), axis=2), axis=0)
    return np.asfortranarray(out)


def build_pyramid(src: BlockVolume, dest: BlockVolume, *, src_lo: Vec, src_hi: Vec, dest_lo: Vec,
                  src_mip: int, dest_mip: int, num_mips: int, factor: Coords, method: str,
                  sparse: bool,
                  write_base: bool) -> None:
    """Read the source block, optionally write it at ``dest_mip``, then write
    ``num_mips`` pooled mips above it. ``dest_lo`` may lie before the data
    (by less than one factor): that margin is filled by edge repetition."""
    f = vec(factor)
    d_start, d_stop = dest.bounds(dest_mip)
    span = src_hi - src_lo
    # the part of the block that holds data, in destination coordinates
    have_lo, have_hi = clip(dest_lo, dest_lo + span, d_start, d_stop)
    if is_empty(have_lo, have_hi):
        return
    shift = src_lo - dest_lo
    img = read_block(src, have_lo + shift, have_hi + shift, src_mip)
    if write_base:
        write_region(dest, img, have_lo, dest_mip)
    if num_mips <= 0:
        return
    img = pad_low(img, have_lo - dest_lo)
    for i, level in enumerate(pool(img, f, num_mips, method, sparse), start=1):
        write_region(dest, level, dest_lo // f**i, dest_mip + i)
