"""RemapTask: apply a label mapping (e.g. watershed fragments -> agglomerated
objects) to one block of a segmentation, writing a new layer.

The mapping is stored once, by the planner, as an .npy of sorted uint64
(from, to) pairs inside the destination layer: tasks stay small whatever the
mapping's size, and ids never pass through JSON floats.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from igneous.blockio import map_block

MAPPING_KEY = "remap/mapping.npy"


def load_mapping(dest_path: str, key: str = MAPPING_KEY) -> np.ndarray:
    """The (n, 2) uint64 pairs stored with the destination layer."""
    from igneous.storage import open_store

    raw = open_store(dest_path).get(key)
    if raw is None:
        raise FileNotFoundError(f"{dest_path}/{key} is missing; plan the remap again")
    return np.load(io.BytesIO(raw), allow_pickle=False)


def apply_mapping(labels: np.ndarray, pairs: np.ndarray, preserve_missing_labels: bool) -> np.ndarray:
    """Each label found in ``pairs[:, 0]`` becomes its ``pairs[:, 1]``; others
    stay (``preserve_missing_labels``) or become 0. ``pairs`` sorted by key."""
    keys, values = pairs[:, 0], pairs[:, 1]
    flat = labels.astype(np.uint64, copy=False).ravel(order="K")
    if len(keys) == 0:
        out = flat.copy() if preserve_missing_labels else np.zeros_like(flat)
    else:
        idx = np.minimum(np.searchsorted(keys, flat), len(keys) - 1)
        found = keys[idx] == flat
        other = flat if preserve_missing_labels else np.uint64(0)
        out = np.where(found, values[idx], other)
    return out.reshape(labels.shape, order="F" if labels.flags.f_contiguous else "C")


def remap(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
          preserve_missing_labels: bool = True, fill_missing: bool = False,
          compress: str | None = "gzip", mapping_key: str = MAPPING_KEY) -> None:
    """Remap one block into the destination layer."""
    pairs = load_mapping(dest_path, mapping_key)
    map_block(src_path, dest_path, mip, offset, shape,
              lambda img, _origin: apply_mapping(img, pairs, preserve_missing_labels),
              fill_missing=fill_missing, compress=compress)
