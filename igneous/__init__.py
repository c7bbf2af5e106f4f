"""Igneous: build and manage Neuroglancer Precomputed volumes.

Importing this package is cheap on purpose: heavy libraries (cloud-volume,
zmesh, kimimaro, ...) are imported inside the functions that need them so the
command line answers instantly.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # the original Igneous's task classes (DownsampleTask, MeshTask, ...), lazily
    from igneous.compat.bridge import compat_attribute

    return compat_attribute(__name__, name)
