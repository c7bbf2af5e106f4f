"""Stores that keep each compression as a name suffix (local disk, memory).

``VariantStore`` implements the contract over six primitives on stored
names (read, read a range, size, write, remove, list), so the suffix rules
(igneous.storage.compression) are applied in this one place: a read takes
the first variant that exists, a write removes the others, so a key
rewritten with another compression is never shadowed by a stale copy.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator

from igneous.storage import compression
from igneous.storage.base import (
    TMP_SUFFIX,
    Store,
    Stored,
    as_keys,
    check_key,
    check_write_key,
    in_listing,
)


class VariantStore(Store):
    """A Store over a flat namespace of stored names (see the module docstring)."""

    # -- primitives ------------------------------------------------------------

    @abstractmethod
    def read_name(self, name: str) -> bytes | None:
        """Bytes stored under exactly ``name``, or None."""

    @abstractmethod
    def read_name_range(self, name: str, start: int, stop: int) -> bytes | None:
        """Bytes [start, stop) stored under exactly ``name``, or None."""

    @abstractmethod
    def name_size(self, name: str) -> int | None:
        """Size stored under exactly ``name``, or None."""

    @abstractmethod
    def write_name(self, name: str, data: bytes, key: str) -> None:
        """Store ``data`` under exactly ``name`` (a variant of ``key``), whole or not at all."""

    @abstractmethod
    def remove_name(self, name: str) -> bool:
        """Remove exactly ``name``; False if it was not there."""

    @abstractmethod
    def names(self, prefix: str) -> Iterator[str]:
        """Stored names starting with ``prefix`` (temporary files included)."""

    # -- the contract ----------------------------------------------------------

    def get_stored_many(self, keys: Iterable[str]) -> Iterator[tuple[str, Stored | None]]:
        for key in keys:  # one at a time: only one object's bytes held at once
            yield key, self.find(check_key(key))

    def find(self, key: str) -> Stored | None:
        """The first stored variant of ``key``."""
        for suffix, how in compression.SUFFIXES.items():
            data = self.read_name(key + suffix)
            if data is not None:
                self.meter.add(reads=1, bytes_in=len(data))
                return Stored(data, how)
        self.meter.add(reads=1)
        return None

    def get_range(self, key: str, start: int, stop: int) -> bytes | None:
        data = self.read_name_range(check_key(key), start, stop)
        self.meter.add(reads=1, bytes_in=len(data or b""))
        return data

    def stat(self, key: str) -> tuple[int, str | None] | None:
        check_key(key)
        self.meter.add(reads=1)
        for suffix, how in compression.SUFFIXES.items():
            size = self.name_size(key + suffix)
            if size is not None:
                return size, how
        return None

    def list(self, prefix: str = "", *, flat: bool = False) -> Iterator[str]:
        seen: set[str] = set()
        for key in self.list_stored(prefix, flat=flat):
            if key not in seen:
                seen.add(key)
                yield key

    def list_stored(self, prefix: str = "", *, flat: bool = False) -> Iterator[str]:
        self.meter.add(lists=1)
        for name in self.names(prefix):
            if name.endswith(TMP_SUFFIX):
                continue
            key, _ = compression.strip_suffix(name)
            if in_listing(key, prefix, flat):
                yield key

    def put_stored_many(self, items: Iterable[tuple[str, Stored]], *,
                        content_type: str | None = None, cache_control: str | None = None) -> None:
        for key, stored in items:
            own = compression.WRITE_SUFFIX[stored.compression]
            self.write_name(check_write_key(key) + own, stored.data, key)
            self.meter.add(writes=1, bytes_out=len(stored.data))
            for suffix in compression.SUFFIXES:
                if suffix != own:
                    self.remove_name(key + suffix)

    def delete(self, keys: str | Iterable[str]) -> None:
        for key in as_keys(keys):
            check_key(key)
            self.meter.add(deletes=1)
            for suffix in compression.SUFFIXES:
                self.remove_name(key + suffix)
