"""Whole-file get / put / delete under a layer path, cheaply.

Local layers (``file://``) are handled here with plain file IO: no
cloud-files import (about 0.5 s and 50 MB per worker process, which is most
of a short task's cost), and every write is atomic (a temporary file renamed
into place), so a killed worker never leaves half a chunk behind. Every other
protocol goes through cloud-files, which knows them all.

On disk the layout is cloud-files' own, so either can read what the other
wrote: a file compressed with gzip is stored as ``NAME.gz``, brotli as
``NAME.br`` and so on, and a read takes the first of ``NAME``, ``NAME.gz``,
``NAME.br``, ``NAME.zstd``, ``NAME.xz``, ``NAME.bz2`` that exists. Unlike
cloud-files, a write here removes the other variants of the name, so a chunk
rewritten with another compression cannot be shadowed by its stale copy.
"""

from __future__ import annotations

import gzip
import os
import secrets
from collections.abc import Iterable, Iterator

from igneous.errors import UserError

# suffix of each stored compression, in the order reads try them
SUFFIXES = {"": None, ".gz": "gzip", ".br": "br", ".zstd": "zstd", ".xz": "xz", ".bz2": "bzip2"}
GZIP_LEVEL = 6
# remote files fetched or sent per concurrent batch (bounds the bytes held at once)
REMOTE_BATCH = 64


def gzip_compress(data: bytes, level: int) -> bytes:
    """gzip through libdeflate (the ``deflate`` package cloud-files depends on:
    about 3x faster than zlib at the same level, and smaller), else zlib."""
    try:
        import deflate
    except ImportError:
        return gzip.compress(data, compresslevel=level, mtime=0)
    return deflate.gzip_compress(data, level)


def gzip_decompress(data: bytes) -> bytes:
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


def decompress(data: bytes, method: str | None) -> bytes:
    if method is None:
        return data
    if method == "gzip":
        return gzip_decompress(data)
    if method == "br":
        import brotli

        return brotli.decompress(data)
    if method == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if method == "xz":
        import lzma

        return lzma.decompress(data)
    import bz2

    return bz2.decompress(data)


def compression(compress: str | bool | None) -> str | None:
    """A cloud-files ``compress`` argument as a method name (None = stored raw)."""
    if compress in (None, False, "", "none"):
        return None
    if compress is True or compress in ("gzip", "gz"):
        return "gzip"
    if compress in ("br", "brotli"):
        return "br"
    return str(compress)


class Files:
    """Files under ``cloudpath`` (a normalized layer path)."""

    def __init__(self, cloudpath: str):
        self.cloudpath = cloudpath
        self.root = cloudpath[len("file://"):] if cloudpath.startswith("file://") else None
        self._cf = None

    @property
    def local(self) -> bool:
        return self.root is not None

    def _cloudfiles(self):
        if self._cf is None:
            from cloudfiles import CloudFiles

            self._cf = CloudFiles(self.cloudpath, progress=False)
        return self._cf

    # -- reading ---------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The (decompressed) content of ``key``, or None if it does not exist."""
        if not self.local:
            return self._cloudfiles().get(key)
        path = os.path.join(self.root, key)
        for suffix, method in SUFFIXES.items():
            try:
                with open(path + suffix, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            try:
                return decompress(data, method)
            except Exception as e:
                raise UserError(f"{self.cloudpath}/{key}{suffix} is corrupt ({method} data that "
                                f"cannot be decompressed: {e}); rewrite or delete it") from None
        return None

    def get_many(self, keys: Iterable[str], batch: int = REMOTE_BATCH) -> Iterator[tuple[str, bytes | None]]:
        """(key, content or None) for each key in order; remote keys are
        fetched concurrently a batch at a time, local ones one by one (so only
        one file's bytes are held at once)."""
        if self.local:
            for key in keys:
                yield key, self.get(key)
            return
        import itertools

        keys = iter(keys)
        while part := list(itertools.islice(keys, batch)):
            got = self._cloudfiles().get(part, return_dict=True, progress=False)
            for key in part:
                yield key, got.get(key)

    def get_json(self, key: str):
        """The parsed JSON of ``key``, or None if it does not exist."""
        import json

        data = self.get(key)
        return None if data is None else json.loads(data)

    # -- writing ---------------------------------------------------------------

    def put_json(self, key: str, value, **kw) -> None:
        import json

        self.put(key, json.dumps(value).encode(), content_type="application/json", **kw)

    def put(self, key: str, content: bytes, *, compress: str | bool | None = None,
            level: int | None = None, content_type: str | None = None) -> None:
        self.put_many([(key, content)], compress=compress, level=level, content_type=content_type)

    def put_many(self, items: Iterable[tuple[str, bytes]], *, compress: str | bool | None = None,
                 level: int | None = None, content_type: str | None = None) -> None:
        """Write whole files; ``compress`` is None/"gzip"/"br"/... as in cloud-files.
        ``items`` may be a generator: files are produced, compressed and written
        one at a time locally, a batch at a time (concurrently) elsewhere."""
        method = compression(compress)
        if not self.local or method not in (None, "gzip"):
            import itertools

            items = iter(items)
            while batch := [{"path": k, "content": c} for k, c in itertools.islice(items, REMOTE_BATCH)]:
                self._cloudfiles().puts(batch, compress=method, compression_level=level,
                                        content_type=content_type, raw=False)
            return
        suffix = ".gz" if method == "gzip" else ""
        for key, content in items:
            if method == "gzip":
                content = gzip_compress(content, GZIP_LEVEL if level is None else level)
            self._write(key, suffix, content)

    def _write(self, key: str, suffix: str, content: bytes) -> None:
        path = os.path.join(self.root, key)
        tmp = f"{path}{suffix}.{secrets.token_hex(4)}.tmp"
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(content)
        os.replace(tmp, path + suffix)
        for other in SUFFIXES:
            if other != suffix:
                _remove(path + other)

    def delete(self, keys: Iterable[str]) -> None:
        """Delete every stored variant of each key (missing ones are fine)."""
        if not self.local:
            self._cloudfiles().delete(list(keys))
            return
        for key in keys:
            path = os.path.join(self.root, key)
            for suffix in SUFFIXES:
                _remove(path + suffix)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
