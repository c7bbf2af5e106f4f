"""Planner for quantize: a float or wide-integer image rescaled block by block
into a new uint8 layer (see task_creation/derived.py for the shared parts)."""

from __future__ import annotations

import numpy as np

from igneous.errors import UserError
from igneous.layers import LayerInfo
from igneous.task_creation.common import TaskPlan
from igneous.task_creation.derived import block_plan, block_step, derived_layer, require_image
from igneous.tasks.quantize import quantize


def create_quantize_tasks(
    src_layer: str, dest_layer: str, shape=None, mip: int = 0, fill_missing: bool = False,
    chunk_size=None, encoding: str = "raw", bounds=None, bounds_mip: int = 0, channel: int = 0,
    value_range=None, compress: str | None = "gzip", overwrite_info: bool = False,
) -> TaskPlan:
    """Rescale one channel of a float or wide-integer image into a uint8 layer.

    ``value_range`` (lo, hi) maps linearly onto 0..255, clipping outside it
    (default: 0..1 for floats, the dtype's range for integers); NaN becomes 0.
    """
    check = require_image("quantize", "fui")

    def source_check(layer: LayerInfo) -> None:
        check(layer)
        if layer.dtype == np.uint8 or layer.dtype == np.int8:
            raise UserError(f"{layer.cloudpath} is already {layer.dtype}; quantize makes uint8 "
                            "from float or wider integer images")
        channels = int(layer.info.get("num_channels", 1))
        if not 0 <= channel < channels:
            raise UserError(f"channel {channel} does not exist (the layer has {channels}); "
                            f"use --channel 0..{channels - 1}")

    src_dtype = np.dtype(LayerInfo(src_layer).dtype)
    lo, hi = _value_range(value_range, src_dtype)
    d = derived_layer(src_layer, dest_layer, mip, bounds=bounds, bounds_mip=bounds_mip,
                      chunk_size=chunk_size, encoding=encoding, data_type="uint8",
                      layer_type="image", num_channels=1, check=source_check,
                      overwrite_info=overwrite_info)
    kwargs = dict(channel=int(channel), value_range=[lo, hi], fill_missing=bool(fill_missing),
                  compress=compress)
    return block_plan(quantize, d, block_step(d, shape), kwargs, f"quantize mip {d.mip}")


def _value_range(value_range, dtype: np.dtype) -> tuple[float, float]:
    if value_range is None:
        if dtype.kind == "f":
            return 0.0, 1.0
        limits = np.iinfo(dtype)
        return float(limits.min), float(limits.max)
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise UserError(f"range must be two numbers MIN,MAX, not {value_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise UserError(f"range must have finite MIN < MAX, not {lo},{hi}")
    return lo, hi
