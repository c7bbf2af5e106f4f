"""Tissue regions of interest: bounding boxes of the non-background parts of
a (low resolution) image, found in memory.

Steps: voxels below ``suppress_faint`` become background; the xy plane is
max-pooled down to ``max_axial_length`` (max keeps every bit of tissue);
26-connected components smaller than ``dust`` voxels are dropped; within each
z bundle the bounding boxes of the remaining components are merged until none
overlap. No task here: the work is one in-memory pass (see
``igneous.task_creation.roi.compute_rois``).
"""

from __future__ import annotations

import numpy as np

Box = tuple[np.ndarray, np.ndarray]  # half-open (lo, hi), x,y,z


def max_pool_xy(img: np.ndarray, f: int) -> np.ndarray:
    """Max over f x f windows in xy (the ragged edge padded with 0)."""
    if f <= 1:
        return img
    sx, sy, sz = img.shape
    padded = np.zeros((-(-sx // f) * f, -(-sy // f) * f, sz), dtype=img.dtype)
    padded[:sx, :sy] = img
    return padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f, sz).max(axis=(1, 3))


def tissue_mask(img: np.ndarray, suppress_faint: int, dust: int) -> np.ndarray:
    """Foreground (bool, x,y,z) after suppressing faint voxels and dust."""
    import cc3d

    fg = img >= max(int(suppress_faint), 1) if img.dtype.kind in "ui" else img > suppress_faint
    if dust > 0 and fg.any():
        fg = cc3d.dust(np.asfortranarray(fg.astype(np.uint8)), threshold=int(dust),
                       connectivity=26).astype(bool)
    return fg


def component_boxes(fg: np.ndarray) -> list[Box]:
    """Bounding boxes of the 26-connected components of ``fg``."""
    import cc3d

    if not fg.any():
        return []
    labels = cc3d.connected_components(np.asfortranarray(fg.astype(np.uint8)), connectivity=26)
    stats = cc3d.statistics(labels)
    boxes = []
    for sl in stats["bounding_boxes"][1:]:
        if sl is None:
            continue
        boxes.append((np.array([s.start for s in sl]), np.array([s.stop for s in sl])))
    return boxes


def merge_overlapping(boxes: list[Box]) -> list[Box]:
    """Union boxes that overlap until no two do (so the count stays small)."""
    boxes = [(lo.copy(), hi.copy()) for lo, hi in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                (a, b), (c, d) = boxes[i], boxes[j]
                if np.all(a < d) and np.all(c < b):
                    boxes[i] = (np.minimum(a, c), np.maximum(b, d))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes, key=lambda box: (int(box[0][2]), int(box[0][1]), int(box[0][0])))


def find_rois(img: np.ndarray, *, suppress_faint: int = 0, dust: int = 10,
              max_axial_length: int = 512, z_step: int | None = None) -> tuple[list[Box], int]:
    """Tissue boxes of a 3D image (voxel indices of ``img``, half-open), and
    the in-memory xy pooling factor used (boxes already scaled back by it)."""
    f = max(1, -(-max(img.shape[0], img.shape[1]) // max(1, int(max_axial_length))))
    fg = tissue_mask(max_pool_xy(img, f), suppress_faint, dust)
    step = fg.shape[2] if not z_step else max(1, int(z_step))
    scale = np.array([f, f, 1])
    limit = np.array(img.shape[:3])
    boxes: list[Box] = []
    for z0 in range(0, fg.shape[2], step):
        for lo, hi in merge_overlapping(component_boxes(fg[:, :, z0:z0 + step])):
            lo = lo + np.array([0, 0, z0])
            hi = hi + np.array([0, 0, z0])
            boxes.append((lo * scale, np.minimum(hi * scale, limit)))
    return boxes, f
