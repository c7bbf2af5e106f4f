"""Block IO: what tasks do with a layer, over one type, ``BlockVolume``.

Every task opens its layers with ``open_volume`` (igneous.chunkio.Volume:
our own chunk IO, with CloudVolume inside it for what it does not do) and
reads, writes and maps blocks with the functions here. Block geometry is
voxels at a mip; blocks are (x, y, z, channel) Fortran arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from igneous.chunkio import open_volume
from igneous.grid import Vec, vec

__all__ = ["BlockVolume", "map_block", "open_pair", "open_volume", "pad_low", "read_block",
           "write_region"]


class BlockVolume(Protocol):
    """A layer as tasks see it (implemented by igneous.chunkio.Volume)."""

    cloudpath: str
    info: dict
    dtype: np.dtype

    @property
    def num_channels(self) -> int: ...

    @property
    def layer_type(self) -> str: ...

    def bounds(self, mip: int) -> tuple[Vec, Vec]: ...

    def chunk_size(self, mip: int) -> Vec: ...

    def resolution(self, mip: int) -> np.ndarray: ...

    def read(self, lo: Vec, hi: Vec, mip: int) -> np.ndarray: ...

    def write(self, img: np.ndarray, origin: Vec, mip: int) -> None: ...

    def delete(self, lo: Vec, hi: Vec, mip: int) -> None: ...

    def skeletons(self, labels: Sequence[int]) -> list: ...

    def meshes(self, labels: Sequence[int]) -> Any: ...


def open_pair(src_path: str, dest_path: str, mip: int, *, fill_missing: bool, agglomerate: bool,
              timestamp: int | None, delete_black_uploads: bool, background_color: int,
              compress: str | bool | None, compress_level: int | None = None
              ) -> tuple[BlockVolume, BlockVolume]:
    """The source (read) and destination (write) volumes of a block task."""
    src = open_volume(src_path, mip, fill_missing=fill_missing, agglomerate=agglomerate,
                      timestamp=timestamp)
    dest = open_volume(dest_path, mip, delete_black_uploads=delete_black_uploads,
                       background_color=background_color, compress=compress,
                       compress_level=compress_level)
    return src, dest


def read_block(vol: BlockVolume, lo: Sequence[int] | Vec, hi: Sequence[int] | Vec,
               mip: int) -> np.ndarray:
    """Voxels [lo, hi) of a mip as a 4D Fortran array (a copy we may modify)."""
    return vol.read(vec(lo), vec(hi), mip)


def write_region(vol: BlockVolume, img: np.ndarray, origin: Sequence[int] | Vec, mip: int) -> None:
    """Write ``img`` placed at ``origin`` into ``mip``, cropped to the mip's bounds."""
    vol.write(img, vec(origin), mip)


def pad_low(img: np.ndarray, pad: Vec) -> np.ndarray:
    """Repeat the first voxel layer ``pad`` times at the low end of each axis."""
    if not np.any(pad):
        return img
    widths = [(int(p), 0) for p in pad] + [(0, 0)]
    return np.asfortranarray(np.pad(img, widths, mode="edge"))


def map_block(src_path: str, dest_path: str, mip: int, offset: Sequence[int],
              shape: Sequence[int], fn: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
              translate: Sequence[int] = (0, 0, 0), fill_missing: bool = False,
              compress: str | None = "gzip") -> None:
    """Write ``fn(block, origin)`` to the destination block ``[offset, offset +
    shape)``; the block is read from the source at ``offset - translate``
    (4D x,y,z,c; ``origin`` is its source voxel position)."""
    src = open_volume(src_path, mip, fill_missing=fill_missing)
    dest = open_volume(dest_path, mip, compress=compress)
    lo = vec(offset)
    src_lo = lo - vec(translate)
    img = read_block(src, src_lo, src_lo + vec(shape), mip)
    out = fn(img, src_lo)
    if out.ndim == 3:
        out = out[..., np.newaxis]
    write_region(dest, np.asfortranarray(out.astype(dest.dtype, copy=False)), lo, mip)
