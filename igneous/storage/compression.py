"""Stored compression, in one place: the name suffixes of each method, and
compressing / decompressing whole objects.

A key ``NAME`` may be stored as ``NAME`` (raw) or compressed as ``NAME.gz``,
``NAME.br``, ``NAME.zstd``, ``NAME.zst``, ``NAME.xz`` or ``NAME.bz2`` (the
suffixes cloud-files and CloudVolume use on local disk and in memory; object
stores keep the plain name and say the method in Content-Encoding). Reads
try the variants in ``SUFFIXES`` order and take the first that exists.
"""

from __future__ import annotations

import gzip

# stored-name suffix -> compression method (None: stored raw), in the order reads try them
SUFFIXES: dict[str, str | None] = {
    "": None, ".gz": "gzip", ".br": "br", ".zstd": "zstd", ".zst": "zstd", ".xz": "xz",
    ".bz2": "bzip2",
}
# method -> the suffix a write uses for it
WRITE_SUFFIX: dict[str | None, str] = {
    None: "", "gzip": ".gz", "br": ".br", "zstd": ".zstd", "xz": ".xz", "bzip2": ".bz2",
}
GZIP_LEVEL = 6


def method(compress: str | bool | None) -> str | None:
    """A cloud-files style ``compress`` argument (True, "gzip", "br", ...) as a
    method name; None means stored raw."""
    if compress in (None, False, "", "none"):
        return None
    if compress is True or compress in ("gzip", "gz"):
        return "gzip"
    if compress in ("br", "brotli"):
        return "br"
    if compress in ("zstd", "zst"):
        return "zstd"
    if compress in ("xz", "lzma"):
        return "xz"
    if compress in ("bzip2", "bz2"):
        return "bzip2"
    raise ValueError(f"unknown compression {compress!r}; use gzip, br, zstd, xz, bzip2 or none")


def strip_suffix(name: str) -> tuple[str, str | None]:
    """(key, method) of a stored name: ``a/b.gz`` -> (``a/b``, "gzip")."""
    for suffix, how in SUFFIXES.items():
        if suffix and name.endswith(suffix):
            return name[: -len(suffix)], how
    return name, None


def gzip_compress(data: bytes, level: int) -> bytes:
    """gzip through libdeflate (the ``deflate`` package cloud-files depends on:
    about 3x faster than zlib at the same level, and smaller), else zlib."""
    try:
        import deflate
    except ImportError:
        return gzip.compress(data, compresslevel=level, mtime=0)
    return bytes(deflate.gzip_compress(data, level))


def gzip_decompress(data: bytes) -> bytes:
    return bytes(gzip_decompress_buffer(data))  # bytes of bytes is the same object


def gzip_decompress_buffer(data: bytes) -> bytes | bytearray:
    """``gzip_decompress`` without turning libdeflate's bytearray into bytes
    (that copies every chunk: 64 MB into fresh pages for a 256^3 uint32 block;
    docs/benchmarks.md, "Against the floor")."""
    try:
        import deflate
    except ImportError:
        return gzip.decompress(data)
    try:
        out = deflate.gzip_decompress(data)
    except deflate.DeflateError:
        return gzip.decompress(data)  # raises the usual BadGzipFile / EOFError
    # libdeflate stops after the first gzip member; the trailer of the last
    # one (its size mod 2**32) tells whether there were more: zlib reads them all
    if len(out) % 2**32 != int.from_bytes(data[-4:], "little"):
        return gzip.decompress(data)
    return out


def compress(data: bytes, how: str | None, level: int | None = None) -> bytes:
    """``data`` compressed with method ``how`` (None: unchanged)."""
    if how is None:
        return data
    if how == "gzip":
        return gzip_compress(data, GZIP_LEVEL if level is None else level)
    if how == "br":
        import brotli

        return bytes(brotli.compress(data, quality=11 if level is None else level))
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    if how == "xz":
        import lzma

        return lzma.compress(data, preset=6 if level is None else level)
    if how == "bzip2":
        import bz2

        return bz2.compress(data, compresslevel=9 if level is None else level)
    raise ValueError(f"unknown compression {how!r}")


def decompress_buffer(data: bytes, how: str | None) -> bytes | bytearray:
    """``decompress``, possibly as a bytearray (no copy): for readers that only view it."""
    if how == "gzip":
        return gzip_decompress_buffer(data)
    return decompress(data, how)


def decompress(data: bytes, how: str | None) -> bytes:
    """The content of an object stored with method ``how``."""
    if how is None:
        return data
    if how == "gzip":
        return gzip_decompress(data)
    if how == "br":
        import brotli

        return bytes(brotli.decompress(data))
    if how == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if how == "xz":
        import lzma

        return lzma.decompress(data)
    if how == "bzip2":
        import bz2

        return bz2.decompress(data)
    raise ValueError(f"unknown compression {how!r}")
