"""Reading and writing the chunks of a precomputed layer without CloudVolume.

Block tasks (downsample, xfer, ccl, voxel counts, ...) spend most of a short
task importing CloudVolume (about 0.8 s and 75 MB per worker process: it
loads every codec and every cloud SDK). For an unsharded precomputed scale,
``Volume`` reads and writes the chunk files itself: each chunk is fetched,
decoded and copied into the output one at a time (so peak memory is the
output plus one chunk), and written atomically on local disk
(igneous.files). raw, compressed_segmentation, compresso and crackle are
decoded here; other encodings (jpeg, png, fpzip, ...) through
``cloudvolume.chunks``, imported only then. Anything else (sharded scales,
zarr / N5 / graphene sources, writes that cut chunks) goes to a CloudVolume
opened on demand with the same options.

Chunk files follow the precomputed spec: ``KEY/x0-x1_y0-y1_z0-z1`` on the
grid anchored at the scale's voxel_offset, cut at the volume's end, voxels in
Fortran order (x fastest), little-endian.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from igneous.errors import UserError
from igneous.files import Files
from igneous.grid import Vec, vec

# encodings decoded here; the others (jpeg, png, fpzip, ...) use cloudvolume.chunks
NATIVE_ENCODINGS = ("raw", "compressed_segmentation", "compresso", "crackle")
# encodings whose chunk files are gzipped when the layer asks for no particular compression
GZIP_BY_DEFAULT = NATIVE_ENCODINGS
# layer paths that are plain precomputed on some storage (not zarr://, n5://, graphene://, ...)
_PLAIN = re.compile(r"^(file|gs|s3|https?|mem|matrix|tigerdata)://")


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


def decode(data: bytes, encoding: str, shape: tuple[int, ...], dtype: np.dtype,
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
    """A precomputed layer opened for block tasks (see the module docstring).

    ``options`` are CloudVolume's keyword arguments (fill_missing, compress,
    compress_level, delete_black_uploads, background_color, ...); the ones
    this class understands are honoured here and all are passed on to the
    fallback CloudVolume.
    """

    def __init__(self, cloudpath: str, info: dict, options: dict):
        self.cloudpath = cloudpath
        self.info = info
        self.options = options
        self.dtype = np.dtype(info["data_type"])
        self.files = Files(cloudpath)
        self._cv = None

    # -- what CloudVolume would tell ------------------------------------------

    @property
    def num_channels(self) -> int:
        return int(self.info.get("num_channels", 1))

    def scale(self, mip: int) -> dict:
        return self.info["scales"][mip]

    def chunk_size(self, mip: int) -> Vec:
        return vec(self.scale(mip)["chunk_sizes"][0])

    def bounds(self, mip: int) -> tuple[Vec, Vec]:
        start = vec(self.scale(mip).get("voxel_offset", (0, 0, 0)))
        return start, start + vec(self.scale(mip)["size"])

    def native(self, mip: int) -> bool:
        """Can this class read and write ``mip`` itself?"""
        scale = self.scale(mip)
        return (bool(_PLAIN.match(self.cloudpath))
                and not self.options.get("agglomerate") and self.options.get("timestamp") is None
                and not scale.get("sharding")
                and len(scale.get("chunk_sizes", [])) == 1)

    def cloudvolume(self, mip: int):
        """The CloudVolume for what this class does not do itself."""
        if self._cv is None:
            from igneous.layers import open_layer

            self._cv = open_layer(self.cloudpath, mip, **self.options)
        self._cv.mip = mip
        return self._cv

    # -- chunks ----------------------------------------------------------------

    def chunk_boxes(self, lo: Vec, hi: Vec, mip: int) -> Iterator[tuple[Vec, Vec]]:
        """The chunks meeting [lo, hi), each as its whole (lo, hi), cut at the volume's end."""
        start, stop = self.bounds(mip)
        chunk = self.chunk_size(mip)
        first = start + (lo - start) // chunk * chunk
        for z in range(first[2], hi[2], chunk[2]):
            for y in range(first[1], hi[1], chunk[1]):
                for x in range(first[0], hi[0], chunk[0]):
                    c_lo = vec((x, y, z))
                    yield c_lo, np.minimum(c_lo + chunk, stop)

    def chunk_key(self, mip: int, c_lo: Vec, c_hi: Vec) -> str:
        return (f"{self.scale(mip)['key']}/{c_lo[0]}-{c_hi[0]}_{c_lo[1]}-{c_hi[1]}"
                f"_{c_lo[2]}-{c_hi[2]}")

    def read(self, lo: Vec, hi: Vec, mip: int) -> np.ndarray:
        """Voxels [lo, hi) of ``mip`` as a new (x, y, z, c) Fortran array."""
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
        for (c_lo, c_hi), (key, data) in zip(boxes, self.files.get_many(keys)):
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
        self.files.put_many(encoded(), compress=compress, level=level,
                            content_type=content_type(encoding))
        if blank:
            self.files.delete(blank)


def open_volume(path: str, mip: int = 0, **options: Any) -> Volume:
    """A Volume for ``path`` checked to have ``mip``; the info is read
    without CloudVolume where that is possible (igneous.layers.LayerInfo)."""
    from igneous.layers import LayerInfo, check_mip, normalize_path

    path = normalize_path(path)
    layer = LayerInfo(path)
    check_mip(layer, mip)
    if "zarr" in layer.info:  # an OME-Zarr layer
        from igneous.zarrio import ZarrVolume

        return ZarrVolume(path, layer.info, options, mip)
    return Volume(path, layer.info, options)
