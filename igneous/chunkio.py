"""``Volume``: the one way tasks open a layer, reading and writing its
chunks without CloudVolume where it can.

Block tasks (downsample, xfer, ccl, voxel counts, ...) spend most of a short
task importing CloudVolume (about 0.8 s and 75 MB per worker process: it
loads every codec and every cloud SDK). For an unsharded precomputed scale,
``Volume`` reads and writes the chunk files itself: each chunk is fetched,
decoded and copied into the output one at a time (so peak memory is the
output plus one chunk), and written atomically on local disk
(igneous.storage). raw, compressed_segmentation, compresso and crackle are
decoded here; other encodings (jpeg, png, fpzip, ...) through
``cloudvolume.chunks``, imported only then. An OME-Zarr layer opens as a
``ZarrVolume`` (igneous.zarrio, tensorstore). Anything else (sharded scales,
N5 / graphene sources, writes that cut chunks, mesh and skeleton read-back)
goes to a CloudVolume opened on demand, inside ``Volume``, with the same
options. igneous.blockio has the block operations tasks use
(read_block, write_region, map_block) and the ``BlockVolume`` protocol.

Chunk files follow the precomputed spec: ``KEY/x0-x1_y0-y1_z0-z1`` on the
grid anchored at the scale's voxel_offset, cut at the volume's end, voxels in
Fortran order (x fastest), little-endian.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from igneous.errors import UserError
from igneous.grid import Vec, clip, grid, is_empty, vec
from igneous.storage import Store, is_plain, open_store

# encodings decoded here; the others (jpeg, png, fpzip, ...) use cloudvolume.chunks
NATIVE_ENCODINGS = ("raw", "compressed_segmentation", "compresso", "crackle")
# encodings whose chunk files are gzipped when the layer asks for no particular compression
GZIP_BY_DEFAULT = NATIVE_ENCODINGS


def default_gzip_level(info: dict) -> int:
    """gzip level when none is asked for. Segmentation compresses well and
    cheaply (libdeflate level 6: ~380 MB/s, files ~26% smaller than level 1);
    image voxels barely compress (level 6 bought 2.5% smaller files for 1.75x
    the CPU on the benchmark image), so images get level 1. CloudVolume's own
    level 9 costs 5x level 6 for files ~16% smaller (docs/benchmarks.md)."""
    return 6 if info.get("type") == "segmentation" else 1


class MissingChunkError(UserError):
    """A chunk the region needs does not exist and fill_missing is off."""


def content_type(encoding: str) -> str:
    if encoding in ("jpeg", "png", "jxl"):
        return "image/" + encoding
    if encoding in ("compresso", "compressed_segmentation", "crackle", "fpzip", "kempressed", "zfpc"):
        return "image/x." + encoding
    return "application/octet-stream"


def decode(data: bytes | bytearray, encoding: str, shape: tuple[int, ...], dtype: np.dtype,
           block_size: Any = (8, 8, 8)) -> np.ndarray:
    """One chunk file's voxels as a (x, y, z, c) Fortran array."""
    if encoding not in NATIVE_ENCODINGS:
        from cloudvolume import chunks

        return chunks.decode(data, encoding, shape=shape, dtype=dtype, block_size=block_size)
    if encoding == "raw":
        expected = int(np.prod(shape)) * dtype.itemsize
        if len(data) != expected:
            raise ValueError(f"raw chunk holds {len(data)} bytes, {expected} expected for {shape} {dtype}")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F")
    data = bytes(data)  # the codecs want bytes, libdeflate gives a bytearray
    if encoding == "compressed_segmentation":
        import compressed_segmentation

        return compressed_segmentation.decompress(data, shape, dtype, tuple(block_size), order="F")
    if encoding == "compresso":
        import compresso

        return compresso.decompress(data).reshape(shape, order="F")
    import crackle

    return crackle.decompress(data).reshape(shape, order="F")


def encode(chunk: np.ndarray, encoding: str, block_size: Any = (8, 8, 8),
           params: dict | None = None) -> bytes:
    """One (x, y, z, c) chunk as the bytes of its file (``params``: the
    scale's compression parameters, for the encodings cloudvolume.chunks does)."""
    if encoding not in NATIVE_ENCODINGS:
        from cloudvolume import chunks

        return chunks.encode(np.asfortranarray(chunk), encoding, block_size,
                             compression_params=params or {})
    if encoding == "raw":
        return chunk.tobytes(order="F")
    if encoding == "compressed_segmentation":
        import compressed_segmentation

        return compressed_segmentation.compress(np.asfortranarray(chunk[..., 0]),
                                                block_size=tuple(block_size), order="F")
    if encoding == "compresso":
        import compresso

        return compresso.compress(np.asfortranarray(chunk[..., 0]))
    import crackle

    return crackle.compress(np.asfortranarray(chunk[..., 0]))


class Volume:
    """A layer opened for tasks (see the module docstring).

    ``options`` are CloudVolume's keyword arguments (fill_missing, compress,
    compress_level, delete_black_uploads, background_color, mesh_dir, ...);
    the ones this class understands are honoured here and all are passed on
    to the fallback CloudVolume.
    """

    def __init__(self, cloudpath: str, info: dict, options: dict):
        self.cloudpath = cloudpath
        self.info = info
        self.options = options
        self.dtype = np.dtype(info["data_type"])
        self.store = open_store(cloudpath) if is_plain(cloudpath) else None
        self._cv: Any = None

    # -- what CloudVolume would tell ------------------------------------------

    @property
    def num_channels(self) -> int:
        return int(self.info.get("num_channels", 1))

    @property
    def layer_type(self) -> str:
        return str(self.info.get("type", "image"))

    def scale(self, mip: int) -> dict:
        return self.info["scales"][mip]

    def chunk_size(self, mip: int) -> Vec:
        return vec(self.scale(mip)["chunk_sizes"][0])

    def bounds(self, mip: int) -> tuple[Vec, Vec]:
        start = vec(self.scale(mip).get("voxel_offset", (0, 0, 0)))
        return start, start + vec(self.scale(mip)["size"])

    def resolution(self, mip: int) -> np.ndarray:
        return np.asarray(self.scale(mip)["resolution"], dtype=np.float64)

    def native(self, mip: int) -> bool:
        """Can this class read and write ``mip`` itself?"""
        scale = self.scale(mip)
        return (self.store is not None
                and not self.options.get("agglomerate") and self.options.get("timestamp") is None
                and not scale.get("sharding")
                and len(scale.get("chunk_sizes", [])) == 1)

    def cloudvolume(self, mip: int = 0) -> Any:
        """The CloudVolume for what this class does not do itself (sharded
        scales, other formats, meshes and skeletons read back)."""
        if self._cv is None:
            from igneous.layers import open_layer

            self._cv = open_layer(self.cloudpath, mip, **self.options)
        cv = self._cv
        cv.mip = mip
        return cv

    # -- regions ---------------------------------------------------------------

    def read(self, lo: Vec, hi: Vec, mip: int) -> np.ndarray:
        """Voxels [lo, hi) of ``mip`` as a new (x, y, z, c) Fortran array."""
        lo, hi = vec(lo), vec(hi)
        if self.native(mip):
            return self.read_chunks(lo, hi, mip)
        from cloudvolume import Bbox

        cv = self.cloudvolume(mip)
        img = np.asfortranarray(np.asarray(cv.download(Bbox(lo, hi), mip=mip)))
        if misreads_byte_order(cv, img):
            img.byteswap(inplace=True)
        return img

    def write(self, img: np.ndarray, origin: Vec, mip: int) -> None:
        """Write ``img`` (x, y, z, c) placed at ``origin`` into ``mip``, cropped
        to the mip's bounds; whole chunks natively, the rest through CloudVolume."""
        origin = vec(origin)
        start, stop = self.bounds(mip)
        lo, hi = clip(origin, origin + vec(img.shape[:3]), start, stop)
        if is_empty(lo, hi):
            return
        a, b = lo - origin, hi - origin
        part = img[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
        if self.native(mip) and self.whole_chunks(lo, hi, mip):
            self.write_chunks(part, lo, mip)
            return
        cv = self.cloudvolume(mip)
        cv[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = part

    def delete(self, lo: Vec, hi: Vec, mip: int) -> None:
        """Delete the chunks of [lo, hi) (clipped to the bounds), which must
        cover whole chunks (those cut by the volume's end count as whole)."""
        start, stop = self.bounds(mip)
        lo, hi = clip(vec(lo), vec(hi), start, stop)
        if is_empty(lo, hi):
            return
        if not self.whole_chunks(lo, hi, mip):
            raise UserError(f"cannot delete {list(lo)}-{list(hi)} of mip {mip} of {self.cloudpath}: "
                            f"it does not cover whole chunks ({list(self.chunk_size(mip))} from "
                            f"{list(start)}); align the region to the chunk grid")
        if self.store is None or self.scale(mip).get("sharding"):
            from cloudvolume import Bbox

            self.cloudvolume(mip).delete(Bbox(lo, hi))
            return
        self.store.delete([self.chunk_key(mip, a, b) for a, b in self.chunk_boxes(lo, hi, mip)])

    def whole_chunks(self, lo: Vec, hi: Vec, mip: int) -> bool:
        """Does [lo, hi) cover whole chunks (those cut by the volume's end count as whole)?"""
        start, stop = self.bounds(mip)
        chunk = self.chunk_size(mip)
        return bool(np.all((lo - start) % chunk == 0)
                    and np.all(((hi - start) % chunk == 0) | (hi == stop)))

    # -- meshes and skeletons (read back through CloudVolume) -----------------

    def skeletons(self, labels: Sequence[int]) -> list:
        """The skeletons of ``labels`` (osteoid Skeletons)."""
        return list(self.objects_reader().skeleton.get([int(x) for x in labels]))

    def meshes(self, labels: Sequence[int]) -> Any:
        """{label: mesh} of ``labels`` at their finest level of detail (the
        mesh directory is the ``mesh_dir`` option, else the info's)."""
        return self.objects_reader().mesh.get([int(x) for x in labels], lod=0, concat=True)

    def objects_reader(self) -> Any:
        """The CloudVolume that reads this layer's meshes and skeletons back."""
        return self.cloudvolume(0)

    # -- chunks ----------------------------------------------------------------

    def chunk_boxes(self, lo: Vec, hi: Vec, mip: int) -> Iterator[tuple[Vec, Vec]]:
        """The chunks meeting [lo, hi), each as its whole (lo, hi), cut at the volume's end."""
        start, stop = self.bounds(mip)
        for c_lo, c_hi in grid(lo, hi, start, self.chunk_size(mip)):
            yield c_lo, np.minimum(c_hi, stop)

    def chunk_key(self, mip: int, c_lo: Vec, c_hi: Vec) -> str:
        return (f"{self.scale(mip)['key']}/{c_lo[0]}-{c_hi[0]}_{c_lo[1]}-{c_hi[1]}"
                f"_{c_lo[2]}-{c_hi[2]}")

    def chunk_store(self) -> Store:
        if self.store is None:
            raise UserError(f"{self.cloudpath} is not a precomputed layer this class reads itself")
        return self.store

    def read_chunks(self, lo: Vec, hi: Vec, mip: int) -> np.ndarray:
        """Voxels [lo, hi) of a native ``mip`` as a new (x, y, z, c) Fortran array,
        chunk by chunk."""
        start, stop = self.bounds(mip)
        if np.any(lo < start) or np.any(hi > stop) or np.any(hi <= lo):
            raise UserError(f"region {list(lo)}-{list(hi)} is outside mip {mip} of {self.cloudpath} "
                            f"(bounds {list(start)}-{list(stop)})")
        scale = self.scale(mip)
        encoding = scale.get("encoding", "raw")
        block_size = scale.get("compressed_segmentation_block_size", (8, 8, 8))
        channels = self.num_channels
        fill = self.options.get("background_color", 0) or 0
        # every voxel is written below (chunk or fill), so no zeroing pass first
        out = np.empty(tuple(hi - lo) + (channels,), dtype=self.dtype, order="F")
        boxes = list(self.chunk_boxes(lo, hi, mip))
        keys = [self.chunk_key(mip, a, b) for a, b in boxes]
        for (c_lo, c_hi), (key, data) in zip(boxes, self.chunk_store().get_buffers(keys)):
            a, b = np.maximum(lo, c_lo), np.minimum(hi, c_hi)
            part = (slice(a[0] - lo[0], b[0] - lo[0]), slice(a[1] - lo[1], b[1] - lo[1]),
                    slice(a[2] - lo[2], b[2] - lo[2]))
            if data is None and not self.options.get("fill_missing"):
                raise MissingChunkError(f"chunk {key} of {self.cloudpath} is missing; pass "
                                        "--fill-missing (fill_missing=True) to read it as background")
            if not data:  # missing (filled) or an empty file: an all-background chunk
                out[part] = fill
                continue
            try:
                voxels = decode(data, encoding, tuple(c_hi - c_lo) + (channels,), self.dtype,
                                block_size)
            except Exception as e:
                raise UserError(f"chunk {key} of {self.cloudpath} cannot be decoded as "
                                f"{encoding} {self.dtype}: {e}") from None
            out[part] = voxels[a[0] - c_lo[0]:b[0] - c_lo[0], a[1] - c_lo[1]:b[1] - c_lo[1],
                               a[2] - c_lo[2]:b[2] - c_lo[2]]
        return out

    def write_chunks(self, img: np.ndarray, lo: Vec, mip: int) -> None:
        """Encode and store the whole chunks making up ``img`` at ``lo`` (chunk-aligned)."""
        scale = self.scale(mip)
        encoding = scale.get("encoding", "raw")
        block_size = scale.get("compressed_segmentation_block_size", (8, 8, 8))
        compress = self.options.get("compress")
        if compress is None:
            compress = "gzip" if encoding in GZIP_BY_DEFAULT else None
        # quality levels etc. of the encodings cloudvolume.chunks does for us
        params = None if encoding in NATIVE_ENCODINGS else \
            self.cloudvolume(mip).meta.compression_params(mip)
        drop_black = bool(self.options.get("delete_black_uploads"))
        background = self.options.get("background_color", 0) or 0
        hi = lo + vec(img.shape[:3])
        blank: list[str] = []

        def encoded() -> Iterator[tuple[str, bytes]]:  # one chunk at a time, not the whole block
            for c_lo, c_hi in self.chunk_boxes(lo, hi, mip):
                a, b = c_lo - lo, c_hi - lo
                sub = img[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
                key = self.chunk_key(mip, c_lo, c_hi)
                if drop_black and not np.any(sub != background):
                    blank.append(key)
                    continue
                yield key, encode(sub, encoding, block_size, params)

        level = self.options.get("compress_level") or default_gzip_level(self.info)
        store = self.chunk_store()
        store.put_many(encoded(), compress=compress, level=level,
                       content_type=content_type(encoding))
        if blank:
            store.delete(blank)


def misreads_byte_order(cv: Any, img: np.ndarray) -> bool:
    """CloudVolume (12.x) decodes N5 blocks, which are big-endian, as native
    little-endian: multi-byte N5 voxels arrive byte-swapped. (tests/test_transfer_formats.py
    fails if a CloudVolume release fixes this, so the swap never doubles.)"""
    return (img.dtype.itemsize > 1 and sys.byteorder == "little"
            and getattr(cv.meta.path, "format", "") == "n5")


def open_volume(path: str, mip: int = 0, **options: Any) -> Volume:
    """A Volume for ``path`` checked to have ``mip``; the info is read
    without CloudVolume where that is possible (igneous.layers.LayerInfo)."""
    from igneous.layers import LayerInfo, check_mip, normalize_path

    path = normalize_path(path)
    layer = LayerInfo(path)
    check_mip(layer, mip)
    if "zarr" in layer.info:  # an OME-Zarr layer
        from igneous.zarrio import ZarrVolume

        return ZarrVolume(path, layer.info, options)
    return Volume(path, layer.info, options)
