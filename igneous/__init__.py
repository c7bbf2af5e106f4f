"""Igneous: build and manage Neuroglancer Precomputed volumes.

Importing this package is cheap on purpose: heavy libraries (cloud-volume,
zmesh, kimimaro, ...) are imported inside the functions that need them so the
command line answers instantly.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # the original Igneous's task classes (DownsampleTask, MeshTask, ...), lazily
    from igneous.capabilities import original_task_class

    try:
        return original_task_class(name)
    except AttributeError:
        raise AttributeError(f"module 'igneous' has no attribute {name!r}") from None
