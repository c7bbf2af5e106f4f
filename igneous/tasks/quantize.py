"""QuantizeTask: one channel of a float or wide-integer image block rescaled
into uint8; and ``map_block``, the read-transform-write step shared by every
task that makes a new layer from an old one voxel for voxel."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from igneous.grid import vec
from igneous.tasks import register


def map_block(src_path: str, dest_path: str, mip: int, offset: Sequence[int],
              shape: Sequence[int], fn: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
              translate: Sequence[int] = (0, 0, 0), fill_missing: bool = False,
              compress: str | None = "gzip") -> None:
    """Write ``fn(block, origin)`` to the destination block ``[offset, offset +
    shape)``; the block is read from the source at ``offset - translate``
    (4D x,y,z,c; ``origin`` is its source voxel position)."""
    from igneous.layers import open_layer
    from igneous.tasks.pyramid import read_block, write_region

    src = open_layer(src_path, mip, fill_missing=fill_missing)
    dest = open_layer(dest_path, mip, compress=compress)
    lo = vec(offset)
    src_lo = lo - vec(translate)
    img = read_block(src, src_lo, src_lo + vec(shape), mip)
    out = fn(img, src_lo)
    if out.ndim == 3:
        out = out[..., np.newaxis]
    write_region(dest, np.asfortranarray(out.astype(dest.dtype, copy=False)), lo, mip)


def quantize_values(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``[lo, hi]`` onto 0..255 linearly, rounded, clipped; NaN -> 0."""
    scaled = (img.astype(np.float64) - lo) * (255.0 / (hi - lo))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


@register("quantize")
def quantize(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
             channel: int = 0, value_range: Sequence[float] = (0.0, 1.0),
             fill_missing: bool = False, compress: str | None = "gzip") -> None:
    """Quantize one block of ``channel`` into the uint8 destination."""
    lo, hi = (float(v) for v in value_range)
    map_block(src_path, dest_path, mip, offset, shape,
              lambda img, _origin: quantize_values(img[..., channel], lo, hi),
              fill_missing=fill_missing, compress=compress)
