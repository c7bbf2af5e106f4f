"""OME-Zarr layers: metadata files and block IO (through tensorstore).

An OME-Zarr image group is opened as a layer like a precomputed one:
``read_info`` describes it as an info dict (igneous.formats.omezarr),
``write_info`` writes that dict back as zarr array and group metadata, and
``ZarrVolume`` is the block reader/writer tasks use (the same ``read`` /
``write_chunks`` / ``bounds`` / ``chunk_size`` as igneous.chunkio.Volume).

Voxels go through tensorstore (measured against zarr-python 3 in
docs/architecture.md): the same driver reads zarr v2 and v3, sharded or
not, on local disk, S3 and GCS. A task writes whole shards (the planners
see the shard as the chunk), so many processes can write one array at once
without reading each other's shards. The small JSON metadata files are read
and written through the storage contract (igneous.storage, atomic on local
disk).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from igneous.chunkio import Volume
from igneous.errors import UserError
from igneous.formats import omezarr
from igneous.grid import Vec, clip, is_empty, vec
from igneous.storage import Store, open_store

ZSTD_LEVEL = 3


# -- metadata --------------------------------------------------------------------

def put_meta(files: Store, key: str, value: dict) -> None:
    """Write one metadata file; like info files, never cached stale (levels
    and labels are added to a group as work proceeds)."""
    from igneous.layers import INFO_CACHE_CONTROL

    files.put_json(key, value, cache_control=INFO_CACHE_CONTROL)


def _no_layer(path: str) -> UserError:
    return UserError(f"no layer at {path} (no info file, zarr.json or .zattrs); check the path, "
                     "or create one with `igneous image create`")


def find_group(files: Store, path: str) -> tuple[int, dict] | None:
    """(zarr version, group metadata) at ``path``, or None when there is no zarr there."""
    try:
        meta = files.get_json("zarr.json")
        if meta is not None:
            if meta.get("node_type") == "array":
                raise UserError(f"{path} is a zarr array, not an OME-Zarr image (no multiscales "
                                "metadata); point at the OME-Zarr group that lists it")
            return 3, meta
        attrs = files.get_json(".zattrs")
        if attrs is not None or files.get_json(".zgroup") is not None:
            return 2, attrs or {}
        if files.get_json(".zarray") is not None:
            raise UserError(f"{path} is a zarr array, not an OME-Zarr image (no multiscales "
                            "metadata); point at the OME-Zarr group that lists it")
    except ValueError as e:
        raise UserError(f"malformed zarr metadata at {path}: {e}") from None
    return None


def array_meta_key(level_path: str, version: int) -> str:
    return f"{level_path}/zarr.json" if version == 3 else f"{level_path}/.zarray"


def read_info(path: str) -> dict:
    """The info dict of the OME-Zarr group at ``path`` (a normalized path)."""
    files = open_store(path)
    found = find_group(files, path)
    if found is None:
        raise _no_layer(path)
    version, group = found
    attrs = omezarr.ome_attributes(group, version)
    arrays = {}
    for ds in (attrs.get("multiscales") or [{}])[0].get("datasets", []):
        key = array_meta_key(str(ds.get("path")), version)
        meta = files.get_json(key)
        if meta is None:
            raise UserError(f"{path}: the multiscales list level {ds.get('path')!r}, but "
                            f"{key} does not exist")
        arrays[str(ds["path"])] = meta
    return omezarr.to_info(group, version, arrays, path)


def _codecs(dtype: np.dtype) -> list[dict]:
    data: dict[str, Any] = {"name": "bytes"}
    if dtype.itemsize > 1:
        data["configuration"] = {"endian": "little"}
    return [data, {"name": "zstd", "configuration": {"level": ZSTD_LEVEL, "checksum": False}}]


def array_meta(info: dict, i: int, version: int) -> dict:
    """The zarr array metadata of level ``i`` of ``info``."""
    z = info["zarr"]
    level = omezarr.level_layout(info, i)
    scale = info["scales"][i]
    dtype = np.dtype(info["data_type"])
    per = {"x": 0, "y": 1, "z": 2}

    def order(xyz: Any, channel: int, time: int = 1) -> list[int]:
        return [int(xyz[per[a]]) if a in per else channel if a == "c" else time for a in z["axes"]]

    channels = int(info.get("num_channels", 1))
    shape = order(scale["size"], channels)
    chunks = order(level["chunks"], channels)
    fill = False if dtype.kind == "b" else 0
    if version == 2:
        return {"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype.str,
                "compressor": {"id": "zstd", "level": ZSTD_LEVEL}, "fill_value": fill,
                "filters": None, "order": "C", "dimension_separator": "/"}
    codecs = _codecs(dtype)
    grid = chunks
    if level["shard"] is not None:
        grid = order(level["shard"], channels)
        codecs = [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": chunks, "codecs": codecs, "index_location": "end",
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                             {"name": "crc32c"}]}}]
    return {"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": str(dtype),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": fill, "codecs": codecs, "dimension_names": list(z["axes"]),
            "attributes": {}}


def write_info(path: str, info: dict) -> None:
    """Write ``info`` as an OME-Zarr group at ``path``: each level's array
    metadata (levels already there must match: their voxels are kept), then
    the group's multiscales, so a reader never sees a level that is not there
    yet; a label group under ``.../labels/NAME`` is listed in its parent."""
    files = open_store(path)
    version = int(info["zarr"]["version"])
    paths = []
    for i in range(len(info["scales"])):
        level = omezarr.level_layout(info, i)
        key = array_meta_key(level["path"], version)
        want = array_meta(info, i, version)
        have = files.get_json(key)
        if have is not None:
            a = omezarr.array_layout(have, version, f"{path}/{level['path']}")
            b = omezarr.array_layout(want, version, f"{path}/{level['path']}")
            if a != b:
                raise UserError(f"{path}/{level['path']} already exists as a {a['dtype']} array of "
                                f"shape {a['shape']} (chunks {a['chunks']}, shard {a['shard']}), "
                                f"not {b['shape']} (chunks {b['chunks']}, shard {b['shard']}); "
                                "choose another destination or delete it")
        else:
            put_meta(files, key, want)
        paths.append(level["path"])
    attrs = omezarr.multiscales(info, paths, version)
    extra = omezarr.extra_info(info)
    if version == 3:
        found = find_group(files, path)  # attributes of other tools beside "ome" are kept
        kept = found[1].get("attributes", {}) if found and found[0] == 3 else {}
        group_attrs: dict[str, Any] = {k: v for k, v in kept.items() if k not in ("ome", "igneous")}
        group_attrs["ome"] = dict(attrs, version="0.5")
        if extra:
            group_attrs["igneous"] = extra
        put_meta(files, "zarr.json", {"zarr_format": 3, "node_type": "group",
                                     "attributes": group_attrs})
    else:
        if extra:
            attrs["igneous"] = extra
        put_meta(files, ".zgroup", {"zarr_format": 2})
        put_meta(files, ".zattrs", attrs)
    _register_label(path, version)


def _register_label(path: str, version: int) -> None:
    """List NAME in the ``labels`` group of ``IMAGE/labels/NAME`` (creating it)."""
    parent, name = path.rstrip("/").rsplit("/", 1)
    if not parent.endswith("/labels"):
        return
    files = open_store(parent)
    found = find_group(files, parent)
    attrs = omezarr.ome_attributes(found[1], found[0]) if found else {}
    names = list(attrs.get("labels", []))
    if name in names:
        return
    names.append(name)
    if version == 3:
        others = found[1].get("attributes", {}) if found and found[0] == 3 else {}
        put_meta(files, "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": dict(
            others, ome=dict(attrs, version="0.5", labels=names))})
    else:
        put_meta(files, ".zgroup", {"zarr_format": 2})
        put_meta(files, ".zattrs", dict(attrs, labels=names))
    image = open_store(parent.rsplit("/", 1)[0])
    if version == 3 and image.get_json("zarr.json") is None:
        put_meta(image, "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": {}})
    elif version == 2 and image.get_json(".zgroup") is None:
        put_meta(image, ".zgroup", {"zarr_format": 2})


def destination_info(dest: str, planned: dict, *, sharded: bool = False, shard_shape: Any = None,
                     shard_bytes: float = 128 * 2**20, encoding: str | None = None) -> dict:
    """The info a transfer writes to ``dest`` (as the user named it): laid out
    as an OME-Zarr for a zarr destination (sharded on request), else plain
    precomputed (its dtype checked)."""
    from igneous.layers import normalize_path

    version = omezarr.requested_version(dest)
    if version is not None:
        if encoding not in (None, "raw"):
            raise UserError(f"--encoding {encoding} does not apply to an OME-Zarr destination "
                            f"(its chunks are zstd level {ZSTD_LEVEL}); omit --encoding")
        return omezarr.layout_for(planned, version, sharded=sharded or shard_shape is not None,
                                  shard_shape=shard_shape, shard_bytes=shard_bytes)
    if sharded or shard_shape is not None:
        raise UserError(f"{dest} is not a zarr destination; for a sharded precomputed layer use "
                        "`igneous image xfer --sharded` without --shard-shape")
    omezarr.check_precomputed_dtype(planned, normalize_path(dest))
    return planned


# -- voxels ----------------------------------------------------------------------

def kvstore(path: str) -> dict:
    """A tensorstore key-value store spec for a normalized layer path."""
    if path.startswith("file://"):
        return {"driver": "file", "path": path[len("file://"):].rstrip("/") + "/"}
    for scheme, driver in (("s3://", "s3"), ("gs://", "gcs")):
        if not path.startswith(scheme):
            continue
        rest = path[len(scheme):]
        spec: dict[str, Any] = {"driver": driver}
        if rest.startswith(("http://", "https://")):  # s3://http://HOST:PORT/BUCKET/... (cloud-files)
            proto, _, rest = rest.partition("://")
            host, _, rest = rest.partition("/")
            spec["endpoint"] = f"{proto}://{host}"
        elif driver == "s3" and os.environ.get("AWS_ENDPOINT_URL"):
            spec["endpoint"] = os.environ["AWS_ENDPOINT_URL"]
        elif driver == "gcs" and os.environ.get("STORAGE_EMULATOR_HOST"):
            # a GCS emulator (as google-cloud-storage and cloud-files honour it);
            # tensorstore's gcs driver takes its endpoint from the environment only
            os.environ.setdefault("TENSORSTORE_GCS_HTTP_URL", os.environ["STORAGE_EMULATOR_HOST"])
        bucket, _, key = rest.partition("/")
        spec.update(bucket=bucket, path=key.rstrip("/") + "/" if key else "")
        if driver == "s3":
            spec["aws_region"] = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        return spec
    if path.startswith(("http://", "https://")):
        return {"driver": "http", "base_url": path.rstrip("/") + "/"}
    raise UserError(f"OME-Zarr layers on {path.split('://')[0]}:// are not supported; use a local "
                    "path, s3://, gs:// or https://")


class ZarrVolume(Volume):
    """Block IO over the levels of an OME-Zarr layer (see the module docstring)."""

    def __init__(self, cloudpath: str, info: dict, options: dict):
        super().__init__(cloudpath, info, options)
        self._arrays: dict[int, Any] = {}
        self._objects: Any = None
        roles = info["zarr"]["axes"]
        kept = [r for r in roles if r != "t"]
        self._roles = roles
        # array (time dropped) -> (x, y, z, c) order, and back
        self._to_xyzc = [kept.index(a) for a in "xyz"] + ([kept.index("c")] if "c" in kept else [])
        self._from_xyzc = [int(i) for i in np.argsort(self._to_xyzc)]

    def native(self, mip: int) -> bool:
        return True

    def cloudvolume(self, mip: int = 0) -> Any:
        """Volume hands CloudVolume what it does not do itself; CloudVolume
        does not read OME-Zarr, so each such use is refused with one line."""
        raise UserError(f"{self.cloudpath} is an OME-Zarr layer, which this operation cannot "
                        "read or write; copy it to precomputed first (`igneous image xfer`)")

    def write(self, img: np.ndarray, origin: Vec, mip: int) -> None:
        """As Volume.write, but whole chunks (shards) only, so two tasks never
        write the same shard file (the planners hand out whole shards)."""
        origin = vec(origin)
        start, stop = self.bounds(mip)
        lo, hi = clip(origin, origin + vec(img.shape[:3]), start, stop)
        if not is_empty(lo, hi) and not self.whole_chunks(lo, hi, mip):
            raise UserError(f"{self.cloudpath} is an OME-Zarr layer and this write covers part "
                            f"of a chunk or shard of level {mip} ({list(self.chunk_size(mip))}); "
                            "use task shapes of whole chunks, or copy it to precomputed first")
        super().write(img, origin, mip)

    def objects_reader(self) -> Any:
        """A CloudVolume over the Precomputed mesh and skeleton directories
        beside the OME-Zarr: handed the info (without its zarr layout), it
        looks for no info file of the layer; it reads no voxels."""
        from igneous.layers import open_layer

        if self._objects is None:
            info = {k: v for k, v in self.info.items() if k != "zarr"}
            self._objects = open_layer(self.cloudpath, 0, info=info, **self.options)
        return self._objects

    def delete(self, lo: Vec, hi: Vec, mip: int) -> None:
        raise UserError(f"{self.cloudpath} is an OME-Zarr layer; igneous does not delete its "
                        "chunks (delete the level's array with your storage tools)")

    def array(self, mip: int) -> Any:
        if mip not in self._arrays:
            import tensorstore as ts

            level = omezarr.level_layout(self.info, mip)
            driver = "zarr3" if int(self.info["zarr"]["version"]) == 3 else "zarr"
            base = kvstore(self.cloudpath)
            base["path"] = base.get("path", "") + level["path"].strip("/") + "/"
            if base["driver"] == "http":
                base = {"driver": "http", "base_url": base.pop("base_url") + base["path"]}
            spec = {"driver": driver, "kvstore": base,
                    "context": {"cache_pool": {"total_bytes_limit": 0}}}
            try:
                self._arrays[mip] = ts.open(spec, read=True, write=True).result()
            except Exception as e:
                raise UserError(f"cannot open level {level['path']} of {self.cloudpath}: "
                                f"{str(e).splitlines()[0]}") from None
        return self._arrays[mip]

    def _index(self, lo: Vec, hi: Vec, mip: int) -> tuple:
        start = self.bounds(mip)[0]
        a, b = lo - start, hi - start
        where = {"x": 0, "y": 1, "z": 2}
        out: list[slice | int] = []
        for role in self._roles:
            if role in where:
                out.append(slice(int(a[where[role]]), int(b[where[role]])))
            elif role == "c":
                out.append(slice(None))
            else:
                out.append(0)
        return tuple(out)

    def read(self, lo: Vec, hi: Vec, mip: int) -> np.ndarray:
        """Voxels [lo, hi) of ``mip`` as a new (x, y, z, c) Fortran array."""
        lo, hi = vec(lo), vec(hi)
        start, stop = self.bounds(mip)
        if np.any(lo < start) or np.any(hi > stop) or np.any(hi <= lo):
            raise UserError(f"region {list(lo)}-{list(hi)} is outside mip {mip} of {self.cloudpath} "
                            f"(bounds {list(start)}-{list(stop)})")
        data = self.array(mip)[self._index(lo, hi, mip)].read().result()
        data = np.transpose(data, self._to_xyzc)
        if data.ndim == 3:
            data = data[..., np.newaxis]
        return np.asfortranarray(data)

    def write_chunks(self, img: np.ndarray, lo: Vec, mip: int) -> None:
        """Write ``img`` (x, y, z, c) at ``lo``; the planners hand a task whole
        shards (or chunks), so no other task writes the same objects."""
        lo = vec(lo)
        hi = lo + vec(img.shape[:3])
        data = img if len(self._to_xyzc) == 4 else img[..., 0]
        data = np.transpose(data, self._from_xyzc)
        self.array(mip)[self._index(lo, hi, mip)].write(data).result()

