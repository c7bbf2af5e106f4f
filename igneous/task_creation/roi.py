"""``compute_rois``: find tissue bounding boxes on the lowest resolution mip
and record them in the info file (``scales[0].rois``, inclusive, mip 0
voxel coordinates), where CloudVolume uses them to skip empty regions."""

from __future__ import annotations

import numpy as np

from igneous.errors import UserError
from igneous.grid import mip_factor, scale_bounds
from igneous.layers import LayerInfo, normalize_path


def compute_rois(
    cloudpath: str, progress: bool = False, suppress_faint_voxels: int = 0,
    dust_threshold: int = 10, max_axial_length: int = 512, z_step: int | None = None,
) -> list[list[int]]:
    """Compute and store the tissue ROIs of ``cloudpath``; return them as
    ``[xstart, ystart, zstart, xend, yend, zend]`` (inclusive, mip 0).

    ``z_step`` bundles z-slices (counted at mip 0) so drifting tissue gives
    several tight boxes instead of one large one.
    """
    from igneous.chunkio import Volume
    from igneous.tasks.roi import find_rois

    for name, v in (("max_axial_length", max_axial_length), ("z_step", z_step or 1)):
        if int(v) < 1:
            raise UserError(f"{name} must be a positive integer, not {v}")
    if dust_threshold < 0 or suppress_faint_voxels < 0:
        raise UserError("dust and suppress-faint thresholds must be >= 0")
    path = normalize_path(cloudpath)
    layer = LayerInfo(path)
    if layer.info.get("type") == "segmentation":
        raise UserError(f"{path} is a segmentation; tissue ROIs are found on image layers")
    info = layer.info
    top = len(info["scales"]) - 1
    factor = mip_factor(info, 0, top)
    start, _ = scale_bounds(info, top)
    start0, stop0 = scale_bounds(info, 0)
    # read with no ROIs in effect: old ones would hide tissue outside them
    plain = dict(info, scales=[dict(s) for s in info["scales"]])
    plain["scales"][0].pop("rois", None)
    vol = Volume(path, plain, {"fill_missing": True, "info": plain, "progress": progress})
    img = vol.read(*vol.bounds(top), top).max(axis=3)
    step = None if not z_step else max(1, int(z_step) // int(factor[2]))
    boxes, pooled = find_rois(img, suppress_faint=suppress_faint_voxels, dust=dust_threshold,
                              max_axial_length=max_axial_length, z_step=step)
    rois = []
    for lo, hi in boxes:
        lo0 = np.maximum((lo + start) * factor, start0)
        hi0 = np.minimum((hi + start) * factor, stop0)
        rois.append([int(v) for v in lo0] + [int(v) - 1 for v in hi0])
    plain["scales"][0]["rois"] = rois
    layer.update(plain)
    print(f"igneous: {len(rois)} ROI bounding boxes (mip {top} analysed, pooled {pooled}x in xy)")
    return rois
