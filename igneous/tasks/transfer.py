"""TransferTask: copy one block into a destination layer (new chunking,
translation, encoding) and write its downsamples in the same pass."""

from __future__ import annotations

from collections.abc import Sequence

from igneous.blockio import open_pair
from igneous.grid import vec
from igneous.tasks.pyramid import build_pyramid


def transfer(
    src_path: str,
    dest_path: str,
    mip: int,
    offset: Sequence[int],
    shape: Sequence[int],
    translate: Sequence[int] = (0, 0, 0),
    num_mips: int = 0,
    factor: Sequence[int] = (2, 2, 1),
    method: str = "avg",
    sparse: bool = False,
    fill_missing: bool = False,
    delete_black_uploads: bool = False,
    background_color: int = 0,
    compress: str | None = "gzip",
    compress_level: int | None = None,
    agglomerate: bool = False,
    timestamp: int | None = None,
) -> None:
    """``[offset, offset + shape)`` is in destination coordinates at ``mip``;
    the source voxels are those at ``offset - translate``."""
    src, dest = open_pair(
        src_path, dest_path, mip, fill_missing=fill_missing, agglomerate=agglomerate,
        timestamp=timestamp, delete_black_uploads=delete_black_uploads,
        background_color=background_color, compress=compress,
        compress_level=compress_level,
    )
    lo = vec(offset)
    src_lo = lo - vec(translate)
    build_pyramid(
        src, dest, src_lo=src_lo, src_hi=src_lo + vec(shape), dest_lo=lo, src_mip=mip,
        dest_mip=mip, num_mips=num_mips, factor=factor, method=method, sparse=sparse,
        write_base=True,
    )
