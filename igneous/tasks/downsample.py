"""DownsampleTask: make mips ``mip+1 .. mip+num_mips`` of one block."""

from __future__ import annotations

from collections.abc import Sequence

from igneous.blockio import open_pair
from igneous.grid import vec
from igneous.tasks.pyramid import build_pyramid


def downsample(
    layer_path: str,
    mip: int,
    offset: Sequence[int],
    shape: Sequence[int],
    num_mips: int,
    factor: Sequence[int] = (2, 2, 1),
    method: str = "avg",
    sparse: bool = False,
    fill_missing: bool = False,
    delete_black_uploads: bool = False,
    background_color: int = 0,
    compress: str | None = "gzip",
    compress_level: int | None = None,
    dest_path: str | None = None,
    agglomerate: bool = False,
    timestamp: int | None = None,
) -> None:
    """Pool the block ``[offset, offset + shape)`` of ``mip`` (voxel coordinates
    at that mip; the planner aligns it so every written chunk is whole)."""
    src, dest = open_pair(
        layer_path, dest_path or layer_path, mip, fill_missing=fill_missing, agglomerate=agglomerate,
        timestamp=timestamp, delete_black_uploads=delete_black_uploads,
        background_color=background_color, compress=compress,
        compress_level=compress_level,
    )
    lo = vec(offset)
    build_pyramid(
        src, dest, src_lo=lo, src_hi=lo + vec(shape), dest_lo=lo, src_mip=mip, dest_mip=mip,
        num_mips=num_mips, factor=factor, method=method, sparse=sparse, write_base=False,
    )
