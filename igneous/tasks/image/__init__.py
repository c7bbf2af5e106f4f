"""The original Igneous's module path for its image tasks (``igneous.tasks.image``);
``igneous.tasks.image.ccl`` holds the CCL names its scripts use."""
