"""Calculators behind ``igneous design``: memory of task shapes."""

from __future__ import annotations

import numpy as np

from igneous.grid import chunk_size, pyramid_bytes, vec


def mips_in_shape(shape, chunk, factor) -> int:
    """Downsamples a block of ``shape`` yields while staying >= one chunk."""
    shape, chunk, factor = vec(shape), vec(chunk), vec(factor)
    k = 0
    down = factor > 1
    while np.all(shape[down] // factor[down] ** (k + 1) >= chunk[down]) and np.all(
        shape[down] % factor[down] ** (k + 1) == 0
    ):
        k += 1
    return k


def shape_memory(info: dict, mip: int, shape, factor) -> tuple[int, int]:
    """(bytes, downsamples) for one task of ``shape`` at ``mip``."""
    from igneous import validate

    shape, factor = validate.int_triple(shape, "shape"), validate.factor(factor)
    itemsize = np.dtype(info["data_type"]).itemsize
    channels = int(info.get("num_channels", 1))
    k = mips_in_shape(shape, chunk_size(info, mip), factor)
    return pyramid_bytes(shape, itemsize, channels, factor, k), k


def best_shape(info: dict, mip: int, memory: float, factor, max_mips: int = 32) -> tuple:
    """(shape, downsamples, bytes) of the largest chunk * factor^k under ``memory``
    (bytes of the image and its mips, as the reference's calculator reports)."""
    from igneous import validate
    from igneous.scales import memory_depth

    memory, factor = validate.memory_target(memory), validate.factor(factor)
    chunk, factor = chunk_size(info, mip), vec(factor)
    itemsize = np.dtype(info["data_type"]).itemsize
    channels = int(info.get("num_channels", 1))
    k = memory_depth(chunk, factor, itemsize, channels, memory, max_mips, overhead=1.0)
    shape = chunk * factor**k
    return shape, k, pyramid_bytes(shape, itemsize, channels, factor, k)


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"
