"""``MemoryStore``: ``mem://BUCKET/PATH``, objects held in this process.

It shares cloud-files' in-memory buckets (same names, same compression
suffixes), so CloudVolume opened on a ``mem://`` path in this process sees
what a MemoryStore wrote, and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator

from igneous.storage.variants import VariantStore


class MemoryStore(VariantStore):
    """Objects in cloud-files' in-memory bucket named by the url."""

    def __init__(self, url: str):
        super().__init__(url)
        from cloudfiles.connectionpools import MEMORY_DATA

        bucket, _, path = self.url[len("mem://"):].partition("/")
        self.data: dict[str, bytes] = MEMORY_DATA.setdefault(bucket, {})
        self.base = path.strip("/") + "/" if path.strip("/") else ""

    def read_name(self, name: str) -> bytes | None:
        data = self.data.get(self.base + name)
        return None if data is None else bytes(data)

    def read_name_range(self, name: str, start: int, stop: int) -> bytes | None:
        data = self.read_name(name)
        return None if data is None else data[start:stop]

    def name_size(self, name: str) -> int | None:
        data = self.data.get(self.base + name)
        return None if data is None else len(data)

    def write_name(self, name: str, data: bytes, key: str) -> None:
        self.data[self.base + name] = data  # one assignment: whole or not at all

    def remove_name(self, name: str) -> bool:
        return self.data.pop(self.base + name, None) is not None

    def names(self, prefix: str) -> Iterator[str]:
        start = self.base + prefix
        for name in list(self.data):
            if name.startswith(start):
                yield name[len(self.base):]
