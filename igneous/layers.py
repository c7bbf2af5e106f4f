"""Opening Precomputed layers through CloudVolume, with one-line errors.

Every command takes any path CloudVolume takes (file://, s3://, gs://,
https:// read-only, and cloud-files aliases). A bare local path becomes
file://. Missing layers, malformed info files and unreachable buckets become
``UserError`` so the CLI prints one line instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from igneous.errors import UserError
from igneous.storage import is_plain, join, normalize_url, open_store
from igneous.storage.probe import probe

SEGMENTATION_ENCODINGS = {"compressed_segmentation", "compresso", "crackle"}
IMAGE_ONLY_ENCODINGS = {"jpeg", "png", "jpegxl", "fpzip", "zfpc"}
KNOWN_ENCODINGS = {"raw"} | SEGMENTATION_ENCODINGS | IMAGE_ONLY_ENCODINGS


def normalize_path(path: str) -> str:
    """A bare local path becomes file://ABSOLUTE; precomputed:// and zarr://
    (zarr2://, zarr3://) prefixes are dropped (igneous.storage.normalize_url)."""
    return normalize_url(path)


def https_path(path: str) -> str:
    """A public gs:// or s3:// layer path as its anonymous https:// address
    (read-only, no credentials needed); other paths unchanged."""
    path = normalize_path(path)
    for scheme, host in (("gs://", "https://storage.googleapis.com/"),
                         ("s3://", "https://s3.amazonaws.com/")):
        if path.startswith(scheme):
            return host + path[len(scheme):]
    return path


@contextmanager
def layer_errors(path: str) -> Iterator[None]:
    """Translate CloudVolume/cloud-files failures about ``path`` into UserError."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        raise _classify(e, path) from None


def _classify(e: Exception, path: str) -> Exception:
    """A UserError for failures caused by the path or the network, else ``e``."""
    from cloudvolume import exceptions as cve

    if isinstance(e, cve.InfoUnavailableError):
        return UserError(f"no layer at {path} (no info file); check the path, or create one "
                         "with `igneous image create`")
    if isinstance(e, cve.ScaleUnavailableError):
        return UserError(f"{path}: {e}")
    if isinstance(e, (cve.UnsupportedProtocolError, cve.AuthenticationError)):
        return UserError(f"cannot access {path}: {e}")
    if isinstance(e, ValueError) and ("JSON" in str(e) or "json" in type(e).__name__.lower()):
        return UserError(f"malformed info file at {path}: {e}")
    if isinstance(e, (ConnectionError, TimeoutError)):
        return UserError(f"cannot reach {path}: {e}")
    name = type(e).__name__
    if any(k in name for k in ("EndpointConnection", "NoCredentials", "ClientError",
                               "NoSuchBucket", "Forbidden", "Unauthorized", "ConnectTimeout")):
        return UserError(f"cannot access {path}: {e}")
    return e


class LayerInfo:
    """A layer's info file without CloudVolume: what planners need, cheaply.

    Precomputed layers on any storage are read and written as plain JSON
    through the storage contract (atomically on local disk); an OME-Zarr
    group (a ``.zarr`` path, or a path with no info file but zarr metadata)
    is described as an info by igneous.zarrio; other sources (n5://,
    graphene://, ...) go through CloudVolume, which synthesizes their info.
    """

    def __init__(self, path: str):
        self.cloudpath = normalize_path(path)
        probe(self.cloudpath)  # a bad bucket or endpoint: one line, in seconds
        with layer_errors(self.cloudpath):
            self.info = self._read_any()
        if not isinstance(self.info, dict) or not isinstance(self.info.get("scales"), list) \
                or not self.info["scales"] or "data_type" not in self.info:
            raise UserError(f"malformed info file at {self.cloudpath}: it needs 'data_type' and 'scales'")

    def _read_any(self) -> dict:
        """A precomputed info file, else an OME-Zarr group described as one."""
        from igneous import zarrio
        from igneous.formats.omezarr import looks_like_zarr

        if looks_like_zarr(self.cloudpath):
            return zarrio.read_info(self.cloudpath)
        try:
            return self._read()
        except Exception as e:
            err = e if isinstance(e, UserError) else _classify(e, self.cloudpath)
            if "no layer at" not in str(err) or not is_plain(self.cloudpath):
                raise
        return zarrio.read_info(self.cloudpath)

    def _read(self) -> dict:
        if not is_plain(self.cloudpath):
            CloudVolume = cloudvolume_class()

            return CloudVolume(self.cloudpath, progress=False).info
        try:
            raw = open_store(self.cloudpath).get("info")
        except OSError as e:
            raise UserError(f"cannot read {self.cloudpath}/info: {e.strerror or e}") from None
        if raw is None:
            raise UserError(f"no layer at {self.cloudpath} (no info file); check the path, or "
                            "create one with `igneous image create`")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise UserError(f"malformed info file at {self.cloudpath}: {e}") from None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.info["data_type"])

    def commit_info(self) -> None:
        write_info(self.cloudpath, self.info)

    def update(self, info: dict) -> None:
        """Replace the info, writing it only if it changed."""
        if info != self.info:
            self.info = info
            self.commit_info()


# info files change as scales, meshes and skeletons are added: caches must revalidate
INFO_CACHE_CONTROL = "no-cache"


def write_info(path: str, info: dict) -> None:
    """Write a layer's (or a mesh / skeleton directory's) info file: JSON,
    atomically on local disk, never cached stale by a CDN or browser. A layer
    info with a ``zarr`` layout, or any layer info for a ``.zarr`` path, is
    written as OME-Zarr metadata instead (igneous.zarrio; a new one unsharded
    zarr v3); the mesh and skeleton directories beside an OME-Zarr stay JSON."""
    path = normalize_path(path)
    probe(path)
    if "scales" in info:
        from igneous.formats.omezarr import layout_for, looks_like_zarr

        if "zarr" not in info and looks_like_zarr(path):  # a new layer named NAME.zarr
            info = layout_for(info, 3, sharded=False)
        if "zarr" in info:
            from igneous import zarrio

            with layer_errors(path):
                zarrio.write_info(path, info)
            return
    if not is_plain(path):
        CloudVolume = cloudvolume_class()

        with layer_errors(path):
            CloudVolume(path, info=info, progress=False).commit_info()
        return
    try:
        with layer_errors(path):
            open_store(path).put("info", json.dumps(info, indent=2).encode(),
                                 content_type="application/json", cache_control=INFO_CACHE_CONTROL)
    except OSError as e:
        raise UserError(f"cannot write {path}/info: {e.strerror or e}") from None


def read_sub_info(path: str, sub: str = "") -> dict | None:
    """The info file of the mesh or skeleton directory ``path/sub``, or None."""
    with layer_errors(path):
        info = open_store(join(normalize_path(path), sub)).get_json("info")
    return info if isinstance(info, dict) or info is None else None


def write_sub_info(layer_path: str, sub: str, info: dict) -> None:
    """Write the info file of a layer's mesh or skeleton directory ``sub``."""
    write_info(join(normalize_path(layer_path), sub), info)


def read_info(path: str) -> dict | None:
    """The info of ``path``, or None when there is no layer there yet."""
    try:
        return LayerInfo(path).info
    except UserError as e:
        if "no layer at" in str(e):
            return None
        raise


def load_layer(path: str, mip: int = 0) -> LayerInfo:
    """Info of ``path`` checked to have ``mip`` (negative counts from the top)."""
    layer = LayerInfo(path)
    check_mip(layer, resolve_mip(layer, mip))
    return layer


WRITE_CACHE_CONTROL = "no-cache"  # chunks and shards CloudVolume writes for us


def cloudvolume_class() -> Any:
    """cloudvolume.CloudVolume, with its storage requests counted like a
    Store's (igneous.storage.cvcount)."""
    from cloudvolume import CloudVolume

    from igneous.storage.cvcount import count_cloudvolume_io

    count_cloudvolume_io()
    return CloudVolume


def open_layer(path: str, mip: int = 0, **kwargs: Any) -> Any:
    """A CloudVolume for ``path`` at ``mip`` with quiet, non-caching defaults."""
    CloudVolume = cloudvolume_class()

    path = normalize_path(path)
    # cdn_cache as a header string: CloudVolume hands a bool straight to the
    # client when it writes a shard, and boto refuses a bool Cache-Control
    opts = dict(progress=False, cache=False, green_threads=False, fill_missing=False,
                cdn_cache=WRITE_CACHE_CONTROL)
    opts.update(kwargs)
    with layer_errors(path):
        cv = CloudVolume(path, **opts)
        if not isinstance(cv.info, dict) or "scales" not in cv.info:
            raise UserError(f"malformed info file at {path}: it has no 'scales'")
        check_mip(cv, mip)
        cv.mip = mip
    return cv


def check_mip(cv: Any, mip: int) -> None:
    n = len(cv.info["scales"])
    if not 0 <= mip < n:
        raise UserError(
            f"mip {mip} does not exist in {cv.cloudpath} (it has mips 0..{n - 1}); "
            "use --mip within that range"
        )


def resolve_mip(cv: Any, mip: int) -> int:
    """-1 (or any negative) counts from the top of the pyramid."""
    n = len(cv.info["scales"])
    return n + mip if mip < 0 else mip


def check_encoding(encoding: str | None, dtype: Any, layer_type: str) -> None:
    """Refuse encodings that cannot hold this dtype or layer type."""
    if encoding is None:
        return
    dtype = np.dtype(dtype)
    if encoding not in KNOWN_ENCODINGS:
        raise UserError(f"unknown encoding {encoding!r}; choose one of {', '.join(sorted(KNOWN_ENCODINGS))}")
    if encoding == "compressed_segmentation" and dtype not in (np.uint32, np.uint64):
        raise UserError(f"compressed_segmentation needs uint32 or uint64 data, not {dtype}")
    if encoding in ("compresso", "crackle") and (dtype.kind not in "ui"):
        raise UserError(f"{encoding} needs integer label data, not {dtype}")
    if encoding in SEGMENTATION_ENCODINGS and layer_type != "segmentation":
        raise UserError(f"{encoding} is for segmentation layers; this layer is an {layer_type}")
    if encoding == "jpeg" and dtype != np.uint8:
        raise UserError(f"jpeg needs uint8 data, not {dtype}; use raw, png or another lossless encoding")
    if encoding == "png" and dtype not in (np.uint8, np.uint16):
        raise UserError(f"png needs uint8 or uint16 data, not {dtype}")
    if encoding in ("fpzip", "zfpc") and dtype.kind != "f":
        raise UserError(f"{encoding} needs float data, not {dtype}")


def parse_triple(value: str | None, name: str, cast: Callable[[str], Any] = int) -> tuple | None:
    """'64,64,64' -> (64, 64, 64) with a clear error."""
    if value is None or value == "":
        return None
    if isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        parts = [p for p in str(value).replace(" ", "").split(",") if p != ""]
    try:
        out = tuple(cast(p) for p in parts)
    except ValueError:
        raise UserError(f"{name} must be three comma-separated numbers like 64,64,64, not {value!r}") from None
    if len(out) != 3:
        raise UserError(f"{name} must have three values (x,y,z), not {value!r}")
    return out


def parse_range(value: str | None, name: str) -> tuple[int, int] | None:
    """'0,100' -> (0, 100)."""
    if not value:
        return None
    parts = str(value).split(",")
    try:
        lo, hi = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"{name} must be START,END like 0,512, not {value!r}") from None
    if hi <= lo:
        raise UserError(f"{name} must have END > START, not {value!r}")
    return lo, hi
