"""Counting CloudVolume's own storage requests.

CloudVolume does its IO (sharded scales, chunks of encodings chunkio leaves
to it, meshes and skeletons read back, info files) through cloud-files'
``CloudFiles``, not through a Store, so the Store meters never see it.
``count_cloudvolume_io()`` makes the cloudvolume modules use a subclass of
``CloudFiles`` that adds each call's requests and bytes to the meter
``CLOUDVOLUME`` (whose parent is the process-wide total), in the same
billing classes as the Stores: a read per object fetched (a byte range
counts as one), a HEAD or existence check per object, a write per object
sent, a delete per key, a list per page of 1,000 keys. Bytes are as
transmitted (before decompression), from cloud-files' own transmission
records. Our own CloudStore keeps the unpatched class, so nothing is
counted twice.

tensorstore (OME-Zarr voxels, igneous.zarrio) keeps its own counters of
every kvstore driver (file, gcs, s3, http); ``tensorstore_counts()`` reads
them in the same classes, and igneous.storage.totals() adds them in.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

from igneous.storage.accounting import TOTAL, Meter

CLOUDVOLUME = Meter(parent=TOTAL)
LIST_PAGE = 1000
_lock = threading.Lock()
_counted: type | None = None


def _as_many(paths: Any) -> tuple[Any, int]:
    """(paths as cloud-files takes them, how many objects they name): one
    path or byte range (a str or dict) stays scalar, anything else becomes a
    list (cloud-files treats both the same way)."""
    if isinstance(paths, (str, dict)):
        return paths, 1
    paths = list(paths)
    return paths, len(paths)


def counted_class() -> type:
    """The counting subclass of cloud-files' CloudFiles (made once)."""
    global _counted
    if _counted is not None:
        return _counted
    from cloudfiles import CloudFiles

    class CountedCloudFiles(CloudFiles):
        """CloudFiles that counts its requests on ``CLOUDVOLUME``."""

        def get(self, paths: Any, *args: Any, return_recording: bool = False, **kw: Any) -> Any:
            paths, n = _as_many(paths)
            ret, tm = super().get(paths, *args, return_recording=True, **kw)
            CLOUDVOLUME.add(reads=n, bytes_in=tm.total_bytes())
            return (ret, tm) if return_recording else ret

        def puts(self, files: Any, *args: Any, return_recording: bool = False, **kw: Any) -> Any:
            ret = super().puts(files, *args, return_recording=True, **kw)
            n, tm = ret
            CLOUDVOLUME.add(writes=int(n), bytes_out=tm.total_bytes())
            return ret if return_recording else n

        def delete(self, paths: Any, *args: Any, **kw: Any) -> Any:
            paths, n = _as_many(paths)
            ret = super().delete(paths, *args, **kw)
            CLOUDVOLUME.add(deletes=n)
            return ret

        def exists(self, paths: Any, *args: Any, **kw: Any) -> Any:
            return self._metadata("exists", paths, *args, **kw)

        def head(self, paths: Any, *args: Any, **kw: Any) -> Any:
            return self._metadata("head", paths, *args, **kw)

        def size(self, paths: Any, *args: Any, **kw: Any) -> Any:
            return self._metadata("size", paths, *args, **kw)

        def _metadata(self, op: str, paths: Any, *args: Any, **kw: Any) -> Any:
            paths, n = _as_many(paths)
            ret = getattr(super(), op)(paths, *args, **kw)
            CLOUDVOLUME.add(reads=n)
            return ret

        def list(self, *args: Any, **kw: Any) -> Iterator[str]:
            CLOUDVOLUME.add(lists=1)
            for n, key in enumerate(super().list(*args, **kw), start=1):
                if n % LIST_PAGE == 0:
                    CLOUDVOLUME.add(lists=1)
                yield key

    _counted = CountedCloudFiles
    return _counted


def count_cloudvolume_io() -> None:
    """Make every loaded cloudvolume module use the counting CloudFiles.
    Cheap to call again (after more cloudvolume modules were imported)."""
    from cloudfiles import CloudFiles

    counted = counted_class()
    with _lock:
        for name, module in list(sys.modules.items()):
            if (name == "cloudvolume" or name.startswith("cloudvolume.")) and \
                    getattr(module, "CloudFiles", None) is CloudFiles:
                module.CloudFiles = counted  # type: ignore[attr-defined]


# tensorstore kvstore metric (after /tensorstore/kvstore/DRIVER/) -> Counts field
TENSORSTORE_FIELDS = {"read": "reads", "write": "writes", "list": "lists",
                      "delete_range": "deletes", "bytes_read": "bytes_in",
                      "bytes_written": "bytes_out"}


def tensorstore_counts() -> dict[str, int]:
    """Requests and bytes tensorstore's kvstores did in this process so far
    (nothing when tensorstore was never imported: it is not imported here)."""
    ts = sys.modules.get("tensorstore")
    out: dict[str, int] = {}
    if ts is None:
        return out
    for metric in ts.experimental_collect_matching_metrics("/tensorstore/kvstore/"):
        name = TENSORSTORE_FIELDS.get(str(metric.get("name", "")).rsplit("/", 1)[-1])
        if name is None:
            continue
        for value in metric.get("values", []):
            if isinstance(value.get("value"), int):
                out[name] = out.get(name, 0) + value["value"]
    return out
