"""``igneous skeleton convert``: skeletons of a layer as SWC files.

SWC (one line per vertex: id, type, x, y, z, radius, parent) is what most
neuron morphology tools read. Coordinates are physical (nm), as the layer
stores them; the radius is the skeleton's ``radius`` attribute when it has
one. Unsharded layers list their own labels; a sharded layer needs LABELS
(it has no cheap listing of its labels).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from igneous.errors import UserError


def skeleton_labels(cv) -> list[int]:
    """Every label of a CloudVolume's unsharded skeleton directory."""
    from igneous.storage import open_store

    if cv.skeleton.meta.is_sharded():
        raise UserError(f"the skeletons of {cv.cloudpath} are sharded: give the LABELS to convert "
                        "(e.g. 12,345,6789)")

    store = open_store(f"{cv.cloudpath}/{cv.skeleton.meta.skeleton_path}")
    return sorted(int(name) for name in store.list(flat=True) if name.isdigit())


def convert_to_swc(src: str, dest_dir: str, labels: Sequence[int] | None = None) -> int:
    """Write ``DEST_DIR/LABEL.swc`` for each label; returns how many were written."""
    from igneous.layers import cloudvolume_class, layer_errors, normalize_path

    CloudVolume = cloudvolume_class()

    src = normalize_path(src)
    with layer_errors(src):
        cv = CloudVolume(src, progress=False)
        if not cv.info.get("skeletons"):
            raise UserError(f"{src} has no skeletons (no 'skeletons' in its info); run "
                            "`igneous skeleton forge` and `merge` first")
        labels = list(labels) if labels else skeleton_labels(cv)
        os.makedirs(dest_dir, exist_ok=True)
        missing = []
        for label in labels:
            try:
                skel = cv.skeleton.get(int(label))
            except Exception:  # noqa: BLE001 - reported together below
                missing.append(label)
                continue
            with open(os.path.join(dest_dir, f"{label}.swc"), "w") as f:
                f.write(skel.to_swc())
    if missing:
        raise UserError(f"{len(missing)} of {len(labels)} labels have no skeleton in {src} "
                        f"(e.g. {missing[:5]}); the others were written to {dest_dir}")
    return len(labels)
