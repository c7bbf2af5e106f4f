"""``import igneous.tasks.image.ccl``: the CCL names of the original Igneous's scripts.

``create_relabeling(src, mip, shape)`` is step 3 (our igneous.tasks.ccl);
the step classes are translated onto our CCL tasks (igneous.compat).
"""

from igneous.compat.original_labels import CCLEquivalancesTask, CCLFacesTask, RelabelCCLTask
from igneous.tasks.ccl import clean_intermediate_files, create_relabeling

__all__ = ["create_relabeling", "clean_intermediate_files", "CCLFacesTask",
           "CCLEquivalancesTask", "RelabelCCLTask"]
