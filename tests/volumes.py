"""Test helpers: make layers, and compute pooling independently with numpy."""

from __future__ import annotations

import numpy as np
from cloudvolume import CloudVolume

BIG = 2**60  # labels above 2^53 must survive exactly


def make_layer(path: str, data: np.ndarray, *, offset=(0, 0, 0), resolution=(4, 4, 40),
               chunk=(16, 16, 8), layer_type=None, encoding="raw") -> str:
    """Write ``data`` (x,y,z) as a one-scale layer with CloudVolume directly."""
    if layer_type is None:
        layer_type = "segmentation" if data.dtype in (np.uint32, np.uint64) else "image"
    info = CloudVolume.create_new_info(
        1, layer_type, str(data.dtype), encoding, list(resolution), list(offset),
        list(data.shape[:3]), chunk_size=list(chunk),
    )
    url = f"file://{path}"
    cv = CloudVolume(url, info=info, progress=False)
    cv.commit_info()
    lo = np.asarray(offset)
    hi = lo + np.asarray(data.shape[:3])
    cv[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = data
    return url


def read_mip(url: str, mip: int, **kw) -> tuple[np.ndarray, np.ndarray]:
    """(data x,y,z, voxel_offset) of a whole mip."""
    cv = CloudVolume(url, mip=mip, progress=False, **kw)
    return np.asarray(cv[:, :, :])[..., 0], np.asarray(cv.voxel_offset)


def _windows(data: np.ndarray, offset, factor):
    """Pad on the absolute grid by repeating edge voxels; return
    (windows array shaped (nx,fx,ny,fy,nz,fz), new offset)."""
    f = np.asarray(factor)
    lo = np.asarray(offset)
    hi = lo + np.asarray(data.shape)
    padlo, padhi = lo % f, (-hi) % f
    padded = np.pad(data, [(int(a), int(b)) for a, b in zip(padlo, padhi)], mode="edge")
    s = padded.shape
    win = padded.reshape(s[0] // f[0], f[0], s[1] // f[1], f[1], s[2] // f[2], f[2])
    return win, (lo - padlo) // f


def average(data: np.ndarray, offset, factor, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Floored mean carried as exact sums across ``levels`` (edges repeated)."""
    sums = data.astype(np.int64)
    off = np.asarray(offset)
    for _ in range(levels):
        win, off = _windows(sums, off, factor)
        sums = win.sum(axis=(1, 3, 5))
    return (sums // int(np.prod(factor)) ** levels).astype(data.dtype), off


def reduce(data: np.ndarray, offset, factor, fn) -> tuple[np.ndarray, np.ndarray]:
    win, off = _windows(data, offset, factor)
    return fn(win, axis=(1, 3, 5)).astype(data.dtype), off


def assert_is_mode(out: np.ndarray, src: np.ndarray, offset, factor) -> None:
    """Every output voxel is a most frequent value of its window."""
    win, _ = _windows(src, offset, factor)
    vals = win.transpose(0, 2, 4, 1, 3, 5).reshape(out.shape + (-1,))
    count_out = (vals == out[..., None]).sum(axis=-1)
    count_max = np.max(np.stack([(vals == vals[..., i:i + 1]).sum(axis=-1)
                                 for i in range(vals.shape[-1])], axis=-1), axis=-1)
    bad = count_out != count_max
    assert not bad.any(), f"{bad.sum()} voxels are not a mode of their window"
