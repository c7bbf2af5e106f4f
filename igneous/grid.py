"""Geometry shared by the planners: scale bounds, task grids, alignment.

Coordinates are voxel coordinates at a given mip, as integer numpy vectors
(x, y, z). A box is a half-open pair ``(start, stop)``.

Downsampled scales are computed from mip 0 with the total factor:
``offset_k = floor(offset_0 / F)``, ``end_k = ceil(end_0 / F)`` (CloudVolume's
own helper uses ``ceil(size / F)``, which drops the last voxel when the
offset is odd).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from igneous.errors import UserError

Vec = np.ndarray
# coordinates or sizes as given: a list from JSON or a numpy vector
Coords = Sequence[int] | np.ndarray
Floats = Sequence[float] | np.ndarray


def vec(x: Sequence[int] | np.ndarray) -> Vec:
    return np.asarray(x, dtype=np.int64).reshape(3)


def positive_shape(shape: Sequence[int] | np.ndarray, name: str = "shape") -> Vec:
    """``shape`` as three positive integers, or a UserError naming the option."""
    try:
        raw = np.asarray(shape, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be three positive integers, not {shape!r}") from None
    if raw.shape != (3,) or not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)) \
            or np.any(raw <= 0):
        raise UserError(f"{name} must be three positive integers, not {raw.tolist()}")
    return raw.astype(np.int64)


def scale_box(offset0: Sequence[int], size0: Sequence[int], factor: Sequence[int]) -> tuple[Vec, Vec]:
    """(voxel_offset, size) of a scale ``factor`` times coarser than mip 0."""
    off, end, f = vec(offset0), vec(offset0) + vec(size0), vec(factor)
    lo = np.floor_divide(off, f)
    hi = -np.floor_divide(-end, f)
    return lo, hi - lo


def scale_bounds(info: dict, mip: int) -> tuple[Vec, Vec]:
    """(start, stop) of a mip from the info file."""
    scale = info["scales"][mip]
    start = vec(scale.get("voxel_offset", (0, 0, 0)))
    return start, start + vec(scale["size"])


def chunk_size(info: dict, mip: int) -> Vec:
    return vec(info["scales"][mip]["chunk_sizes"][0])


def resolution(info: dict, mip: int) -> np.ndarray:
    return np.asarray(info["scales"][mip]["resolution"], dtype=np.float64)


def mip_factor(info: dict, lo: int, hi: int) -> Vec:
    """Integer factor between two mips (hi coarser than lo)."""
    ratio = resolution(info, hi) / resolution(info, lo)
    out = np.round(ratio).astype(np.int64)
    if np.any(np.abs(ratio - out) > 1e-6) or np.any(out < 1):
        raise ValueError(f"mip {hi} is not an integer downsample of mip {lo} ({ratio})")
    return out


def aligned_depth(offsets: Sequence[Vec], factor: Vec, *, include_base: bool) -> int:
    """How many mips one pass can write with every task owning whole chunks.

    ``offsets[i]`` is the voxel offset of mip ``base + i``. A task anchored on
    the top mip's grid lines up with mip ``base + i`` when
    ``f^(k-i) * offset[k] == offset[i]``; the base itself only matters when the
    pass writes it (transfer), otherwise one voxel of edge padding is fine.
    """
    best = 0
    for k in range(1, len(offsets)):
        first = 0 if include_base else 1
        ok = all(
            np.array_equal(factor ** (k - i) * offsets[k], offsets[i]) for i in range(first, k + 1)
        )
        if not include_base:
            pad = offsets[0] - factor**k * offsets[k]
            ok = ok and bool(np.all((pad >= 0) & (pad < factor)))
        if not ok:
            break
        best = k
    return best


def grid_cells(start: Sequence[int] | Vec, stop: Sequence[int] | Vec, origin: Sequence[int] | Vec,
               step: Sequence[int] | Vec) -> tuple[Vec, Vec]:
    """(low corner of the first cell, cells per axis) of the grid anchored at
    ``origin`` with ``step`` that touch [start, stop)."""
    start, stop, origin, step = vec(start), vec(stop), vec(origin), vec(step)
    first = origin + np.floor_divide(start - origin, step) * step
    return first, np.maximum(-np.floor_divide(-(stop - first), step), 0)


def cell_index(t: int, counts: Vec) -> Vec:
    """(i, j, k) of the ``t``-th cell in the order ``grid`` yields them (x fastest)."""
    strides = np.array([1, counts[0], counts[0] * counts[1]], np.int64)
    return (t // strides) % counts


class Grid:
    """The cells of a grid anchored at ``origin`` with ``step`` that touch
    [start, stop), numbered x fastest; any cell or run of cells can be made
    from its index alone (workers expand big plans piecewise from this)."""

    def __init__(self, start: Coords, stop: Coords, origin: Coords, step: Coords):
        self.start, self.stop, self.origin, self.step = vec(start), vec(stop), vec(origin), vec(step)
        if np.any(self.step <= 0):
            raise ValueError(f"grid step must be positive, not {as_list(self.step)}")
        self.first, self.counts = grid_cells(start, stop, origin, step)

    def __len__(self) -> int:
        return int(np.prod(self.counts))

    def __iter__(self) -> Iterator[tuple[Vec, Vec]]:
        return self.cells()

    def cells(self, begin: int = 0, end: int | None = None) -> Iterator[tuple[Vec, Vec]]:
        """(lo, hi) of cells ``begin .. end - 1`` (unclipped)."""
        end = len(self) if end is None else min(end, len(self))
        for t in range(max(begin, 0), end):
            lo = self.first + self.step * cell_index(t, self.counts)
            yield lo, lo + self.step

    def to_json(self) -> list[list[int]]:
        return [as_list(self.start), as_list(self.stop), as_list(self.origin), as_list(self.step)]

    @classmethod
    def from_json(cls, data: Sequence[Sequence[int]]) -> Grid:
        start, stop, origin, step = (vec(x) for x in data)
        return cls(start, stop, origin, step)


def grid(start: Coords, stop: Coords, origin: Coords, step: Coords) -> Iterator[tuple[Vec, Vec]]:
    """Cells of a grid anchored at ``origin`` with ``step`` that touch [start, stop)."""
    return Grid(start, stop, origin, step).cells()


def grid_count(start: Coords, stop: Coords, origin: Coords, step: Coords) -> int:
    return len(Grid(start, stop, origin, step))


def clip(lo: Coords, hi: Coords, start: Coords, stop: Coords) -> tuple[Vec, Vec]:
    return np.maximum(lo, start), np.minimum(hi, stop)


def is_empty(lo: Vec, hi: Vec) -> bool:
    return bool(np.any(hi <= lo))


def pyramid_bytes(shape: Sequence[int], itemsize: int, channels: int, factor: Sequence[int],
                  num_mips: int) -> int:
    """Bytes to hold a block and all the downsamples made from it."""
    voxels = float(np.prod(vec(shape)))
    shrink = float(np.prod(vec(factor)))
    total = sum(voxels / shrink**i for i in range(num_mips + 1))
    return int(total * itemsize * channels)


def box_name(lo: Coords, hi: Coords) -> str:
    """``x0-x1_y0-y1_z0-z1``: the file name of a box (forge fragments, scratch files)."""
    return "_".join(f"{int(a)}-{int(b)}" for a, b in zip(lo, hi))


def as_list(v: Vec) -> list[int]:
    return [int(x) for x in v]
