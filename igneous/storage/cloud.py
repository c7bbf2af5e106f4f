"""``CloudStore``: s3://, gs://, http(s):// and the other cloud-files protocols.

cloud-files stays the client (credentials, retries, connection pools,
concurrency); this class only adds the contract's rules on top of it.
Objects move raw (``raw=True``): compression is done and undone with
igneous.storage.compression, so the bytes counted are the bytes stored, and
the method travels as the object's Content-Encoding. Many keys are fetched
or sent concurrently, ``BATCH`` at a time, which bounds the bytes held.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from igneous.errors import UserError
from igneous.storage import compression
from igneous.storage.base import Store, Stored, as_keys, check_key

BATCH = 64  # objects per concurrent request batch
LIST_PAGE = 1000  # keys per list request (S3 and GCS page size)


class CloudStore(Store):
    """Objects below a cloud-files path."""

    def __init__(self, url: str):
        super().__init__(url)
        self._cf: Any = None

    @property
    def cloudfiles(self) -> Any:
        """The cloud-files client (imported on first use)."""
        if self._cf is None:
            from cloudfiles import CloudFiles

            self._cf = CloudFiles(self.url, progress=False)
        return self._cf

    # -- reading ---------------------------------------------------------------

    def fetch(self, keys: list[str]) -> dict[str, Stored | None]:
        """{key: stored object or None} for one batch, fetched concurrently."""
        for key in keys:
            check_key(key)
        results = self.cloudfiles.get(keys, raw=True, return_dict=False, progress=False)
        out: dict[str, Stored | None] = {}
        received = 0
        for res in results:
            if res.get("error") is not None:
                raise res["error"]
            content = res.get("content")
            if content is None:
                out[res["path"]] = None
                continue
            received += len(content)
            out[res["path"]] = Stored(bytes(content), encoding_method(res.get("compress")))
        self.meter.add(reads=len(keys), bytes_in=received)
        return out

    def get_many(self, keys: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        it = iter(keys)
        while part := list(itertools.islice(it, BATCH)):
            got = self.fetch(part)
            for key in part:
                stored = got.get(key)
                yield key, None if stored is None else self.decode(key, stored)

    def decode(self, key: str, stored: Stored) -> bytes:
        try:
            return compression.decompress(stored.data, stored.compression)
        except Exception as e:
            raise UserError(f"{self.url}/{key} is corrupt ({stored.compression} data that "
                            f"cannot be decompressed: {e}); rewrite or delete it") from None

    def get_stored(self, key: str) -> Stored | None:
        return self.fetch([key]).get(key)

    def get_range(self, key: str, start: int, stop: int) -> bytes | None:
        check_key(key)
        res = self.cloudfiles.get([{"path": key, "start": start, "end": stop}], raw=True,
                                  return_dict=False, progress=False)[0]
        if res.get("error") is not None:
            raise res["error"]
        data = res.get("content")
        self.meter.add(reads=1, bytes_in=len(data or b""))
        return None if data is None else bytes(data)

    def size(self, key: str) -> int | None:
        self.meter.add(reads=1)
        size = self.cloudfiles.size(check_key(key))
        return None if size is None else int(size)

    def exists(self, key: str) -> bool:
        # one metadata request (HEAD); cloud-files' own exists() batches
        # through GCS's batch endpoint, which the GCS emulator lacks
        return self.size(key) is not None

    def list(self, prefix: str = "") -> Iterator[str]:
        self.meter.add(lists=1)
        for n, key in enumerate(self.cloudfiles.list(prefix=prefix, flat=False), start=1):
            if n % LIST_PAGE == 0:
                self.meter.add(lists=1)
            yield key

    # -- writing ---------------------------------------------------------------

    def put_many(self, items: Iterable[tuple[str, bytes]], *, compress: str | bool | None = None,
                 level: int | None = None, content_type: str | None = None,
                 cache_control: str | None = None) -> None:
        how = compression.method(compress)
        it = iter(items)
        while batch := list(itertools.islice(it, BATCH)):
            files = [{"path": check_key(key), "content": compression.compress(bytes(data), how, level)}
                     for key, data in batch]
            self.cloudfiles.puts(files, compress=how, raw=True, content_type=content_type,
                                 cache_control=cache_control, progress=False)
            self.meter.add(writes=len(files), bytes_out=sum(len(f["content"]) for f in files))

    def delete(self, keys: str | Iterable[str]) -> None:
        keys = [check_key(k) for k in as_keys(keys)]
        if keys:
            self.cloudfiles.delete(keys, progress=False)
            self.meter.add(deletes=len(keys))


def encoding_method(encoding: str | None) -> str | None:
    """cloud-files' / HTTP's Content-Encoding name as a compression method."""
    if not encoding or encoding in ("identity", "none"):
        return None
    return compression.method(encoding)
