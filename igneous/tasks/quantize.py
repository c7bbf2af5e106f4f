"""QuantizeTask: one channel of a float or wide-integer image block rescaled
into uint8 (through pyramid.map_block)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from igneous.blockio import map_block


def quantize_values(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``[lo, hi]`` onto 0..255 linearly, rounded, clipped; NaN -> 0."""
    scaled = (img.astype(np.float64) - lo) * (255.0 / (hi - lo))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def quantize(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
             channel: int = 0, value_range: Sequence[float] = (0.0, 1.0),
             fill_missing: bool = False, compress: str | None = "gzip") -> None:
    """Quantize one block of ``channel`` into the uint8 destination."""
    lo, hi = (float(v) for v in value_range)
    map_block(src_path, dest_path, mip, offset, shape,
              lambda img, _origin: quantize_values(img[..., channel], lo, hi),
              fill_missing=fill_missing, compress=compress)
