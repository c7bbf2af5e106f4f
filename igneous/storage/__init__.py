"""One storage contract for every read and write of the package.

``open_store(path)`` gives the ``Store`` for a path: ``LocalStore`` for
file:// and plain paths, ``MemoryStore`` for mem://, ``GCSStore`` for
gs:// (google-cloud-storage with one bounded retry policy), ``CloudStore``
(cloud-files) for s3://, http(s):// and the rest. See
docs/storage.md for the contract, compression variants, atomic local writes
and the request / byte accounting (``totals()``).
"""

from __future__ import annotations

import os
import re

from igneous.storage.accounting import Counts, Meter, totals
from igneous.storage.base import Store, Stored, check_key

__all__ = ["ZARR_PREFIXES", "Counts", "Meter", "Store", "Stored", "check_key", "is_plain", "join",
           "normalize_url", "open_store", "totals"]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# protocols whose paths hold plain objects (not zarr://, n5://, graphene://, ... sources)
_PLAIN = re.compile(r"^(file|gs|s3|https?|mem|matrix|tigerdata)://")
# zarr path prefixes as Neuroglancer spells them, and the zarr version each
# names (None: found from what is stored; igneous.formats.omezarr). A zarr is
# plain objects, read by igneous.zarrio, so the prefix is only a name.
ZARR_PREFIXES: dict[str, int | None] = {"zarr://": None, "zarr2://": 2, "zarr3://": 3}


def is_plain(url: str) -> bool:
    """Is ``url`` (normalized) a place of plain objects a Store can serve?"""
    return bool(_PLAIN.match(url))


def normalize_url(path: str) -> str:
    """A bare local path becomes file://ABSOLUTE; precomputed:// and zarr://
    (zarr2://, zarr3://) prefixes are dropped: a layer's format is found from
    what is stored there (igneous.layers), a new one's from the name it was
    given (igneous.formats.omezarr.requested_version)."""
    for prefix in ("precomputed://", *ZARR_PREFIXES):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    if not _SCHEME.match(path):
        return "file://" + os.path.abspath(os.path.expanduser(path))
    return path


def join(url: str, *parts: str) -> str:
    """``url/part/...`` with single slashes."""
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts if p.strip("/"))])


def open_store(path: str) -> Store:
    """The Store for ``path`` (a layer path, a directory inside one, ...)."""
    url = normalize_url(path)
    if url.startswith("file://"):
        from igneous.storage.local import LocalStore

        return LocalStore(url)
    if url.startswith("mem://"):
        from igneous.storage.memory import MemoryStore

        return MemoryStore(url)
    if url.startswith("gs://"):
        from igneous.storage.gcs import GCSStore

        return GCSStore(url)
    from igneous.storage.cloud import CloudStore

    return CloudStore(url)
