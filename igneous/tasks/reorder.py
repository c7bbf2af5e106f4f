"""ReorderTask: build one destination block whose z-slices come from other
source z positions (a permutation checked by the planner)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from igneous.grid import vec


def runs(sources: Sequence[int]) -> list[tuple[int, int, int]]:
    """Split destination slices into runs of consecutive source z:
    (first destination index, first source z, length); one read per run."""
    out: list[tuple[int, int, int]] = []
    for i, z in enumerate(sources):
        if out and out[-1][1] + out[-1][2] == z:
            first, start, n = out[-1]
            out[-1] = (first, start, n + 1)
        else:
            out.append((i, int(z), 1))
    return out


def reorder(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
            sources: Sequence[int], fill_missing: bool = False, compress: str | None = "gzip",
            delete_black_uploads: bool = False, background_color: int = 0) -> None:
    """``sources[i]`` is the source z of destination slice ``offset.z + i``."""
    from igneous.blockio import read_block, write_region
    from igneous.chunkio import open_volume

    src = open_volume(src_path, mip, fill_missing=fill_missing)
    dest = open_volume(dest_path, mip, compress=compress, delete_black_uploads=delete_black_uploads,
                       background_color=background_color)
    lo, size = vec(offset), vec(shape)
    if len(sources) != size[2]:
        raise ValueError(f"reorder task has {len(sources)} sources for {size[2]} slices")
    img = np.zeros((size[0], size[1], size[2], src.num_channels), dtype=src.dtype, order="F")
    for first, z, n in runs(sources):
        a = vec((lo[0], lo[1], z))
        img[:, :, first:first + n] = read_block(src, a, a + vec((size[0], size[1], n)), mip)
    write_region(dest, img, lo, mip)
