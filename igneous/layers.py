"""Opening Precomputed layers through CloudVolume, with one-line errors.

Every command takes any path CloudVolume takes (file://, s3://, gs://,
https:// read-only, and cloud-files aliases). A bare local path becomes
file://. Missing layers, malformed info files and unreachable buckets become
``UserError`` so the CLI prints one line instead of a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from igneous.errors import UserError

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

SEGMENTATION_ENCODINGS = {"compressed_segmentation", "compresso", "crackle"}
IMAGE_ONLY_ENCODINGS = {"jpeg", "png", "jpegxl", "fpzip", "zfpc"}
KNOWN_ENCODINGS = {"raw"} | SEGMENTATION_ENCODINGS | IMAGE_ONLY_ENCODINGS


def normalize_path(path: str) -> str:
    """A bare local path becomes file://ABSOLUTE; precomputed:// prefixes are dropped."""
    if path.startswith("precomputed://"):
        path = path[len("precomputed://"):]
    if not _SCHEME.match(path):
        return "file://" + os.path.abspath(os.path.expanduser(path))
    return path


@contextmanager
def layer_errors(path: str) -> Iterator[None]:
    """Translate CloudVolume/cloud-files failures about ``path`` into UserError."""
    from cloudvolume import exceptions as cve

    try:
        yield
    except UserError:
        raise
    except cve.InfoUnavailableError:
        raise UserError(
            f"no layer at {path} (no info file); check the path, or create one with "
            "`igneous image create`"
        ) from None
    except cve.ScaleUnavailableError as e:
        raise UserError(f"{path}: {e}") from None
    except (cve.UnsupportedProtocolError, cve.AuthenticationError) as e:
        raise UserError(f"cannot access {path}: {e}") from None
    except ValueError as e:
        if "JSON" in str(e) or "json" in type(e).__name__.lower():
            raise UserError(f"malformed info file at {path}: {e}") from None
        raise
    except (ConnectionError, TimeoutError, OSError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)) and not path.startswith("file://"):
            raise
        raise UserError(f"cannot reach {path}: {e}") from None
    except Exception as e:  # botocore / google errors: classify by name, keep others
        name = type(e).__name__
        if any(k in name for k in ("EndpointConnection", "NoCredentials", "ClientError",
                                   "NoSuchBucket", "Forbidden", "Unauthorized", "ConnectTimeout")):
            raise UserError(f"cannot access {path}: {e}") from None
        raise


def open_layer(path: str, mip: int = 0, **kwargs: Any):
    """A CloudVolume for ``path`` at ``mip`` with quiet, non-caching defaults."""
    from cloudvolume import CloudVolume

    path = normalize_path(path)
    opts = dict(progress=False, cache=False, green_threads=False, fill_missing=False)
    opts.update(kwargs)
    with layer_errors(path):
        cv = CloudVolume(path, **opts)
        if not isinstance(cv.info, dict) or "scales" not in cv.info:
            raise UserError(f"malformed info file at {path}: it has no 'scales'")
        check_mip(cv, mip)
        cv.mip = mip
    return cv


def check_mip(cv, mip: int) -> None:
    n = len(cv.info["scales"])
    if not 0 <= mip < n:
        raise UserError(
            f"mip {mip} does not exist in {cv.cloudpath} (it has mips 0..{n - 1}); "
            "use --mip within that range"
        )


def resolve_mip(cv, mip: int) -> int:
    """-1 (or any negative) counts from the top of the pyramid."""
    n = len(cv.info["scales"])
    return n + mip if mip < 0 else mip


def is_segmentation(cv) -> bool:
    return cv.info.get("type") == "segmentation"


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


def parse_triple(value: str | None, name: str, cast=int) -> tuple | None:
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
