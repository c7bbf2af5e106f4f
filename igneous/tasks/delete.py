"""DeleteTask: remove the chunks of a region over several mips."""

from __future__ import annotations

from collections.abc import Sequence

from igneous.errors import UserError
from igneous.grid import clip, is_empty, mip_factor, scale_bounds, vec


def delete(layer_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
           num_mips: int = 0) -> None:
    """Delete ``[offset, offset + shape)`` of ``mip`` and the matching region of
    the next ``num_mips`` mips (chunks wholly inside the region)."""
    from igneous.blockio import open_volume

    vol = open_volume(layer_path, mip)
    top = min(len(vol.info["scales"]) - 1, mip + num_mips)
    lo, hi = vec(offset), vec(offset) + vec(shape)
    for m in range(mip, top + 1):
        if vol.info["scales"][m].get("sharding"):
            raise UserError(f"mip {m} of {vol.cloudpath} is sharded; delete its shard files instead")
        f = mip_factor(vol.info, mip, m)
        start, stop = scale_bounds(vol.info, m)
        a, b = clip(lo // f, -((-hi) // f), start, stop)
        if is_empty(a, b):
            continue
        vol.delete(a, b, m)
