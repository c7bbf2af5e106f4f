"""The storage contract: one abstract ``Store`` every backend implements.

A store holds whole objects under string keys (``a/b/c``, relative, no
``..``) below its ``url``. Contents are handed back decompressed; how an
object is stored compressed is the backend's business (suffixed names on
local disk and in memory, Content-Encoding in object stores). Every backend
counts its requests and bytes (igneous.storage.accounting).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from igneous.errors import UserError
from igneous.storage import compression
from igneous.storage.accounting import TOTAL, Counts, Meter

TMP_SUFFIX = ".tmp"  # names ending so are a writer's temporary files, never objects


class Stored(NamedTuple):
    """An object as stored: its bytes and their compression (None: raw)."""

    data: bytes
    compression: str | None


def check_key(key: str) -> str:
    """``key`` if it is a relative path inside the store, else ValueError."""
    parts = key.split("/")
    if not key or key.startswith("/") or ".." in parts or "\\" in key:
        raise ValueError(f"invalid storage key {key!r}: keys are relative paths without '..'")
    return key


def as_keys(keys: str | Iterable[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


def check_write_key(key: str) -> str:
    """``key`` if an object may be written under it (no temporary-file names)."""
    if check_key(key).endswith(TMP_SUFFIX):
        raise ValueError(f"invalid storage key {key!r}: names ending in {TMP_SUFFIX} are "
                         "reserved for temporary files")
    return key


def in_listing(key: str, prefix: str, flat: bool) -> bool:
    """Does ``key`` belong in a listing of ``prefix`` (``flat``: one level only)?"""
    if not key.startswith(prefix):
        return False
    return not flat or "/" not in key[prefix.rfind("/") + 1:]


class Store(ABC):
    """Whole objects under ``url``: get / put / delete / list / exists.

    Writes take ``compress`` (None, "gzip", "br", "zstd", "xz", "bzip2"),
    ``level`` (the method's level), ``content_type`` and ``cache_control``
    (object stores only). Writing a key replaces every stored variant of it.
    """

    url: str
    # a prefix listing reads every name of the directory (local disk), where an
    # object store lists a prefix server-side: many listings of small prefixes
    # of one large directory are better done as one (``mesh_merge.write_listings``)
    lists_by_scan: bool = False

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.meter = Meter(parent=TOTAL)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def counts(self) -> Counts:
        """Requests and bytes this store has done so far."""
        return self.meter.snapshot()

    # -- what a backend implements ----------------------------------------------

    @abstractmethod
    def get_stored_many(self, keys: Iterable[str]) -> Iterator[tuple[str, Stored | None]]:
        """(key, object as stored or None) for each key, in order; remote
        backends fetch concurrently a batch at a time (bounded memory)."""

    @abstractmethod
    def put_stored_many(self, items: Iterable[tuple[str, Stored]], *,
                        content_type: str | None = None, cache_control: str | None = None) -> None:
        """Store each (key, already compressed object) whole, replacing every
        other variant of the key; ``items`` may be a generator."""

    @abstractmethod
    def get_range(self, key: str, start: int, stop: int) -> bytes | None:
        """Bytes [start, stop) of an object stored uncompressed (shard files)."""

    @abstractmethod
    def stat(self, key: str) -> tuple[int, str | None] | None:
        """(stored size in bytes, compression) of ``key``, or None if it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "", *, flat: bool = False) -> Iterator[str]:
        """Every key starting with ``prefix`` (compression suffixes removed,
        temporary files left out), in no particular order; ``flat``: only
        keys with no ``/`` after the prefix's last one (one directory level)."""

    def list_stored(self, prefix: str = "", *, flat: bool = False) -> Iterator[str]:
        """``list`` without removing duplicates: a key stored under two
        compressions may come twice (``list`` remembers every key it gave to
        drop them: ~100 bytes per key of a listing of millions)."""
        return self.list(prefix, flat=flat)

    @abstractmethod
    def delete(self, keys: str | Iterable[str]) -> None:
        """Delete every stored variant of each key (missing keys are fine)."""

    # -- reading ---------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The content of ``key``, or None if it does not exist."""
        for _, data in self.get_many([key]):
            return data
        return None

    def get_many(self, keys: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        """(key, content or None) for each key, in order."""
        for key, stored in self.get_stored_many(keys):
            yield key, None if stored is None else self.decode(key, stored)

    def get_buffers(self, keys: Iterable[str]) -> Iterator[tuple[str, bytes | bytearray | None]]:
        """``get_many`` for readers that only view the content (chunk decoding):
        gzip content comes as libdeflate's bytearray, without a copy into bytes."""
        for key, stored in self.get_stored_many(keys):
            yield key, None if stored is None else self.decode(key, stored, copy=False)

    def get_stored(self, key: str) -> Stored | None:
        """``key`` as stored (still compressed), or None: for serving it as is."""
        for _, stored in self.get_stored_many([key]):
            return stored
        return None

    def decode(self, key: str, stored: Stored, copy: bool = True) -> bytes:
        """The content of a stored object; a UserError naming it if it is corrupt.
        ``copy=False``: may be a bytearray (see ``get_buffers``)."""
        try:
            if not copy:
                return compression.decompress_buffer(stored.data, stored.compression)  # type: ignore[return-value]
            return compression.decompress(stored.data, stored.compression)
        except Exception as e:
            name = key + compression.WRITE_SUFFIX[stored.compression]
            raise UserError(f"{self.url}/{name} is corrupt ({stored.compression} data that "
                            f"cannot be decompressed: {e}); rewrite or delete it") from None

    def size(self, key: str) -> int | None:
        """Stored size of ``key`` in bytes, or None if it does not exist."""
        found = self.stat(key)
        return None if found is None else found[0]

    def exists(self, key: str) -> bool:
        """Is any variant of ``key`` stored?"""
        return self.stat(key) is not None

    def get_json(self, key: str) -> Any:
        """The parsed JSON of ``key``, or None if it does not exist."""
        data = self.get(key)
        return None if data is None else json.loads(data)

    # -- writing ---------------------------------------------------------------

    def put(self, key: str, data: bytes, *, compress: str | bool | None = None,
            level: int | None = None, content_type: str | None = None,
            cache_control: str | None = None) -> None:
        """Store ``data`` as ``key`` (whole, replacing any other variant)."""
        self.put_many([(key, data)], compress=compress, level=level, content_type=content_type,
                      cache_control=cache_control)

    def put_many(self, items: Iterable[tuple[str, bytes]], *, compress: str | bool | None = None,
                 level: int | None = None, content_type: str | None = None,
                 cache_control: str | None = None) -> None:
        """Store each (key, data) compressed with ``compress``; ``items`` may be
        a generator: objects are produced, compressed and written a batch at a
        time, never all held at once."""
        how = compression.method(compress)
        self.put_stored_many(((key, Stored(compression.compress(bytes(data), how, level), how))
                              for key, data in items),
                             content_type=content_type, cache_control=cache_control)

    def put_json(self, key: str, value: Any, *, compress: str | bool | None = None,
                 cache_control: str | None = None) -> None:
        self.put(key, json.dumps(value).encode(), compress=compress,
                 content_type="application/json", cache_control=cache_control)

    def copy_to(self, dest: Store, keys: Iterable[str]) -> int:
        """Copy ``keys`` (as stored: no recompression) into ``dest``; the number copied."""
        copied = 0

        def present() -> Iterator[tuple[str, Stored]]:
            nonlocal copied
            for key, stored in self.get_stored_many(keys):
                if stored is not None:
                    copied += 1
                    yield key, stored

        dest.put_stored_many(present())
        return copied

    def remove_leftovers(self, prefix: str = "") -> int:
        """Remove temporary files that killed writers left under ``prefix``;
        the number removed. Only local disk has them."""
        return 0

    # -- places ----------------------------------------------------------------

    def child(self, prefix: str) -> Store:
        """The store of the keys below ``prefix/`` (sharing this one's meter parent)."""
        from igneous.storage import open_store

        return open_store(f"{self.url}/{check_key(prefix.strip('/'))}")
