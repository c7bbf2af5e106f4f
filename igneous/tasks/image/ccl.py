"""``import igneous.tasks.image.ccl``: the CCL names of the original Igneous's scripts.

``create_relabeling(src, mip, shape)`` is step 3 (igneous.tasks.ccl); the step
classes are translated onto our CCL tasks (igneous.compat.original_labels).
"""

from __future__ import annotations

from collections.abc import Sequence

from igneous.compat.original_labels import CCLEquivalancesTask, CCLFacesTask, RelabelCCLTask
from igneous.tasks.ccl import clean_intermediate_files

__all__ = ["create_relabeling", "clean_intermediate_files", "CCLFacesTask",
           "CCLEquivalancesTask", "RelabelCCLTask"]


def create_relabeling(cloudpath: str, mip: int = 0, shape: Sequence[int] | None = None,
                      progress: bool = False) -> int:
    """Step 3 (our igneous.tasks.ccl.create_relabeling); also records the number
    of objects as ``KEY/ccl/max_label.json`` (``[N]``), where the original's
    step-4 planner reads it, so its ``create_ccl_relabel_tasks`` can follow."""
    from igneous.layers import LayerInfo
    from igneous.storage import open_store
    from igneous.tasks import ccl

    objects = ccl.create_relabeling(cloudpath, mip, shape, progress=progress)
    layer = LayerInfo(cloudpath)
    key = layer.info["scales"][mip]["key"]
    open_store(layer.cloudpath).put_json(f"{key}/ccl/max_label.json", [int(objects)])
    return objects
