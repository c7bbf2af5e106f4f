"""OME-Zarr metadata <-> the info dict our planners and tasks read.

An OME-Zarr image (NGFF 0.5 on zarr v3, or NGFF 0.4 on zarr v2) is a group
whose ``multiscales`` list one array per level. Here it is described the way
a precomputed info file describes a layer, so every planner works on it
unchanged:

* ``scales[i]``: ``key`` = the level's array path, ``resolution`` in nm
  (the level's ``scale`` times its axis unit), ``voxel_offset`` =
  ``translation / scale`` (rounded), ``size`` = the array's spatial shape,
  ``chunk_sizes`` = the unit a task must write whole: the shard when the
  array is sharded, else the chunk; ``encoding`` = ``raw``.
* ``type``: ``segmentation`` when the group carries ``image-label``.
* ``zarr``: what the writer needs to reproduce the layout: zarr version,
  axis names in array order, and per level its path, chunk and shard
  (x, y, z), plus the group's other OME attributes (kept on rewrite).
* other top-level info keys (``mesh``, ``skeletons``, ...) live in the
  group's ``igneous`` attribute.

Axes: three space axes named x, y, z (any order, units we can convert to
nm), at most one channel axis, and a time axis only of length 1; anything
else is refused. Voxel ``i`` of a level sits at ``scale * i + translation``
(its corner, as in precomputed): translation = voxel_offset * resolution.
This module only transforms JSON; igneous.zarrio reads and writes it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np

from igneous.errors import UserError
from igneous.storage import ZARR_PREFIXES

NM_PER_UNIT = {
    "angstrom": 0.1, "picometer": 1e-3, "nanometer": 1.0, "micrometer": 1e3, "micron": 1e3,
    "millimeter": 1e6, "centimeter": 1e7, "meter": 1e9,
}
# dtypes a precomputed layer can hold
PRECOMPUTED_DTYPES = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
                      "float32", "float64"}
INFO_KEYS = ("type", "data_type", "num_channels", "scales", "zarr")
_ZARR_COMPONENT = re.compile(r"\.zarr(/|$)")


def requested_version(path: str) -> int | None:
    """For a destination: 2 or 3 when ``path`` names a zarr (prefix or a
    ``.zarr`` component; zarr v3 unless ``zarr2://``), else None."""
    for prefix, version in ZARR_PREFIXES.items():
        if path.startswith(prefix):
            return version or 3
    return 3 if _ZARR_COMPONENT.search(path.rstrip("/")) else None


def looks_like_zarr(path: str) -> bool:
    """Does the (normalized) path have a ``.zarr`` component?"""
    return bool(_ZARR_COMPONENT.search(path.rstrip("/")))


# -- reading -------------------------------------------------------------------

def ome_attributes(group: dict, version: int) -> dict:
    """The OME attributes of a group's metadata (0.5: under ``ome``)."""
    attrs = group.get("attributes", {}) if version == 3 else group
    if version == 3 and isinstance(attrs.get("ome"), dict):
        return attrs["ome"]
    return attrs


def _axis(ax: Any) -> dict:
    if isinstance(ax, str):  # NGFF 0.3 listed names only
        kind = "space" if ax in "xyz" else "channel" if ax == "c" else "time" if ax == "t" else ""
        return {"name": ax, "type": kind}
    if not isinstance(ax, dict) or "name" not in ax:
        raise UserError(f"malformed OME-Zarr axis {ax!r}: it needs a name")
    return ax


def parse_axes(axes: list, path: str) -> tuple[list[str], list[float]]:
    """Axis roles in array order ('x','y','z','c','t') and nm per unit of each."""
    roles, nm = [], []
    for ax in map(_axis, axes):
        name, kind, unit = str(ax["name"]).lower(), ax.get("type"), ax.get("unit")
        if kind == "space" or (kind is None and name in ("x", "y", "z")):
            if name not in ("x", "y", "z"):
                raise UserError(f"{path}: space axis {ax['name']!r} cannot be mapped to x, y or z; "
                                "name the space axes x, y and z")
            if unit is not None and unit not in NM_PER_UNIT:
                raise UserError(f"{path}: axis {name} has unit {unit!r}, which cannot be converted "
                                f"to nanometers (use one of {', '.join(NM_PER_UNIT)})")
            roles.append(name)
            nm.append(NM_PER_UNIT[unit or "nanometer"])
        elif kind == "channel" or (kind is None and name == "c"):
            roles.append("c")
            nm.append(1.0)
        elif kind == "time" or (kind is None and name == "t"):
            roles.append("t")
            nm.append(1.0)
        else:
            raise UserError(f"{path}: axis {ax['name']!r} of type {kind!r} cannot be mapped; "
                            "only x, y, z space axes, one channel and a length-1 time axis are read")
    if sorted(r for r in roles if r in "xyz") != ["x", "y", "z"] or len(roles) != len(set(roles)):
        raise UserError(f"{path}: axes {[_axis(a)['name'] for a in axes]} cannot be mapped; "
                        "an OME-Zarr layer needs exactly one each of x, y and z")
    return roles, nm


def _transforms(items: list | None, ndim: int, path: str) -> tuple[np.ndarray, np.ndarray]:
    scale, shift = np.ones(ndim), np.zeros(ndim)
    for t in items or []:
        if t.get("type") == "scale":
            scale = scale * np.asarray(t["scale"], dtype=np.float64)
            shift = shift * np.asarray(t["scale"], dtype=np.float64)
        elif t.get("type") == "translation":
            shift = shift + np.asarray(t["translation"], dtype=np.float64)
        elif t.get("type") != "identity":
            raise UserError(f"{path}: coordinate transformation {t.get('type')!r} is not supported "
                            "(only scale and translation)")
    return scale, shift


def array_layout(meta: dict, version: int, path: str) -> dict:
    """shape, dtype, chunk and shard (array order) of one level's array metadata."""
    try:
        if version == 3:
            if meta.get("node_type") != "array":
                raise UserError(f"{path} is not a zarr array")
            dtype = np.dtype(meta["data_type"])
            grid = list(meta["chunk_grid"]["configuration"]["chunk_shape"])
            codecs = meta.get("codecs", [])
            if codecs and codecs[0].get("name") == "sharding_indexed":
                inner = list(codecs[0]["configuration"]["chunk_shape"])
                return dict(shape=list(meta["shape"]), dtype=dtype, chunks=inner, shard=grid)
            return dict(shape=list(meta["shape"]), dtype=dtype, chunks=grid, shard=None)
        dtype = np.dtype(meta["dtype"])
        return dict(shape=list(meta["shape"]), dtype=dtype, chunks=list(meta["chunks"]), shard=None)
    except (KeyError, TypeError) as e:
        raise UserError(f"malformed zarr array metadata at {path}: missing {e}") from None


def to_info(group: dict, version: int, arrays: dict[str, dict], path: str) -> dict:
    """The info dict of an OME-Zarr group (``arrays``: level path -> array metadata)."""
    attrs = ome_attributes(group, version)
    multiscales = attrs.get("multiscales")
    if not multiscales or not isinstance(multiscales, list):
        hint = ""
        if attrs.get("labels"):
            hint = f"; its labels are at {path}/labels/{attrs['labels'][0]}"
        raise UserError(f"{path} is a zarr group but not an OME-Zarr image (no multiscales "
                        f"metadata){hint}")
    ms = multiscales[0]
    roles, nm = parse_axes(ms.get("axes") or ["z", "y", "x"], path)
    g_scale, g_shift = _transforms(ms.get("coordinateTransformations"), len(roles), path)
    space = [roles.index(a) for a in "xyz"]
    scales: list[dict] = []
    levels: list[dict] = []
    dtype: np.dtype | None = None
    channels = 1
    for ds in ms.get("datasets", []):
        level_path = str(ds["path"])
        layout = array_layout(arrays[level_path], version, f"{path}/{level_path}")
        if len(layout["shape"]) != len(roles):
            raise UserError(f"{path}/{level_path} has {len(layout['shape'])} dimensions but the "
                            f"multiscales list {len(roles)} axes")
        if dtype is not None and layout["dtype"] != dtype:
            raise UserError(f"{path}: level {level_path} is {layout['dtype']}, level 0 {dtype}")
        dtype = layout["dtype"]
        shape = layout["shape"]
        if "t" in roles and shape[roles.index("t")] != 1:
            raise UserError(f"{path}: a time axis of length {shape[roles.index('t')]} cannot be "
                            "mapped (only length 1)")
        channels = shape[roles.index("c")] if "c" in roles else 1
        d_scale, d_shift = _transforms(ds.get("coordinateTransformations"), len(roles), path)
        scale, shift = g_scale * d_scale, g_scale * d_shift + g_shift
        res = [float(scale[i] * nm[i]) for i in space]
        offset = [int(round(shift[i] / scale[i])) for i in space]
        chunks = [int(layout["chunks"][i]) for i in space]
        shard = [int(layout["shard"][i]) for i in space] if layout["shard"] else None
        scales.append({
            "key": level_path, "resolution": [int(r) if r.is_integer() else r for r in res],
            "voxel_offset": offset, "size": [int(shape[i]) for i in space],
            "chunk_sizes": [shard or chunks], "encoding": "raw",
        })
        levels.append({"path": level_path, "chunks": chunks, "shard": shard})
    if not scales:
        raise UserError(f"{path}: the multiscales list no datasets")
    label = "image-label" in attrs
    extra = (group.get("attributes", {}) if version == 3 else group).get("igneous", {})
    info = {k: v for k, v in extra.items() if k not in INFO_KEYS}
    info.update({
        "type": "segmentation" if label else "image", "data_type": str(dtype),
        "num_channels": int(channels), "scales": scales,
        "zarr": {"version": version, "axes": roles, "levels": levels,
                 "name": ms.get("name"), "attributes": _kept_attributes(attrs)},
    })
    return info


def _kept_attributes(attrs: dict) -> dict:
    """OME attributes other than those rebuilt from the info (omero, ...)."""
    return {k: v for k, v in attrs.items() if k not in ("multiscales", "version", "image-label")}


# -- writing -------------------------------------------------------------------

def layout_for(info: dict, version: int, *, sharded: bool,
               shard_shape: tuple[int, int, int] | None = None,
               shard_bytes: float = 128 * 2**20) -> dict:
    """``info`` (precomputed-style: chunk_sizes = the chunk) laid out as a new
    OME-Zarr: axes, level paths and, when sharded, shard shapes chosen so
    one shard holds at most ``shard_bytes`` (or ``shard_shape``). The result
    reads back unchanged through to_info."""
    if sharded and version == 2:
        raise UserError("zarr v2 has no sharding; write zarr v3 (zarr3:// or a .zarr path) or "
                        "drop --sharded")
    dtype = np.dtype(info["data_type"])
    if dtype.kind not in "uifb":
        raise UserError(f"data type {dtype} cannot be stored in an OME-Zarr layer")
    info = copy.deepcopy(info)
    channels = int(info.get("num_channels", 1))
    axes = (["c"] if channels > 1 else []) + ["z", "y", "x"]
    levels = []
    for i, scale in enumerate(info["scales"]):
        chunk = np.asarray(scale["chunk_sizes"][0], dtype=np.int64)
        shard = None
        if sharded:
            shard = _shard(chunk, np.asarray(scale["size"]), dtype.itemsize * channels,
                           shard_shape, shard_bytes)
        levels.append({"path": str(i), "chunks": [int(c) for c in chunk],
                       "shard": None if shard is None else [int(s) for s in shard]})
        scale["key"] = str(i)
        scale["encoding"] = "raw"
        scale["chunk_sizes"] = [levels[-1]["shard"] or levels[-1]["chunks"]]
        for key in ("sharding", "compressed_segmentation_block_size"):
            scale.pop(key, None)
    info["zarr"] = {"version": version, "axes": axes, "levels": levels, "name": None,
                    "attributes": {}}
    return info


def _shard(chunk: np.ndarray, size: np.ndarray, itemsize: int, shard_shape: Any,
           shard_bytes: float) -> np.ndarray:
    if shard_shape is not None:
        shard = np.asarray(shard_shape, dtype=np.int64)
        if np.any(shard <= 0) or np.any(shard % chunk):
            raise UserError(f"shard shape {list(map(int, shard))} is not a multiple of the chunk "
                            f"size {list(map(int, chunk))}; choose --shard-shape as whole chunks")
        return shard
    shard = chunk.copy()
    extent = -(-size // chunk) * chunk  # the volume, rounded up to whole chunks
    grown = True
    while grown:
        grown = False
        for axis in (0, 1, 2):
            bigger = shard.copy()
            bigger[axis] *= 2
            if bigger[axis] > extent[axis] and shard[axis] >= extent[axis]:
                continue
            if np.prod(bigger) * itemsize > shard_bytes:
                continue
            shard, grown = bigger, True
    return shard


def level_layout(info: dict, i: int) -> dict:
    """Path, chunk and shard (x, y, z) of level ``i``; levels added to the
    info since it was read (a downsample) get the next free path and the
    base level's chunk, sharded like it with chunk_sizes as the shard."""
    z = info["zarr"]
    if i < len(z["levels"]):
        return z["levels"][i]
    scale = info["scales"][i]
    base = z["levels"][0]
    unit = [int(c) for c in scale["chunk_sizes"][0]]
    if base["shard"] is None:
        return {"path": _free_path(z["levels"], info["scales"], i), "chunks": unit, "shard": None}
    chunks = [int(np.gcd(a, b)) for a, b in zip(base["chunks"], unit)]
    return {"path": _free_path(z["levels"], info["scales"], i), "chunks": chunks, "shard": unit}


def _free_path(levels: list, scales: list, i: int) -> str:
    taken = {lv["path"] for lv in levels}
    n = i
    while str(n) in taken:
        n += 1
    return str(n)


def multiscales(info: dict, paths: list[str], version: int) -> dict:
    """The OME attributes (multiscales and, for labels, image-label) of ``info``."""
    z = info["zarr"]
    axes_meta = []
    for role in z["axes"]:
        if role in "xyz":
            axes_meta.append({"name": role, "type": "space", "unit": "nanometer"})
        elif role == "c":
            axes_meta.append({"name": "c", "type": "channel"})
        else:
            axes_meta.append({"name": "t", "type": "time"})
    datasets = []
    for path, scale in zip(paths, info["scales"]):
        per_axis = {a: (float(r), float(r) * int(o))
                    for a, r, o in zip("xyz", scale["resolution"], scale.get("voxel_offset", [0] * 3))}
        s = [per_axis[a][0] if a in per_axis else 1.0 for a in z["axes"]]
        t = [per_axis[a][1] if a in per_axis else 0.0 for a in z["axes"]]
        datasets.append({"path": path, "coordinateTransformations": [
            {"type": "scale", "scale": s}, {"type": "translation", "translation": t}]})
    ms: dict = {"axes": axes_meta, "datasets": datasets}
    if z.get("name"):
        ms["name"] = z["name"]
    if version == 2:
        ms["version"] = "0.4"
    attrs = dict(z.get("attributes") or {})
    attrs["multiscales"] = [ms]
    if info.get("type") == "segmentation":
        attrs["image-label"] = {"version": "0.4"} if version == 2 else {}
    return attrs


def extra_info(info: dict) -> dict:
    """Top-level info keys kept in the group's ``igneous`` attribute."""
    return {k: v for k, v in info.items() if k not in INFO_KEYS}


def check_precomputed_dtype(info: dict, dest: str) -> None:
    """A precomputed destination holds only these dtypes."""
    if str(np.dtype(info["data_type"])) not in PRECOMPUTED_DTYPES:
        raise UserError(f"data type {info['data_type']} cannot be stored in a precomputed layer "
                        f"({dest}); write an OME-Zarr destination (a .zarr path) instead")
