"""``CloudStore``: s3://, gs://, http(s):// and the other cloud-files protocols.

cloud-files stays the client (credentials, retries, connection pools,
concurrency); this class only adds the contract's rules on top of it.
Objects move raw (``raw=True``): compression is done and undone with
igneous.storage.compression, so the bytes counted are the bytes stored, and
the method travels as the object's Content-Encoding. Many keys are fetched
or sent concurrently, ``BATCH`` at a time, which bounds the bytes held.

Transient failures (5xx and 429 answers, reset connections, bodies shorter
than their Content-Length) are retried with back-off inside the clients
cloud-files drives (boto's retries, google-cloud-storage's, cloud-files' own
around each request); a short body is an error there, never data. gs://
objects are read and written by the subclass igneous.storage.gcs.GCSStore,
with one bounded retry policy instead of cloud-files' nested ones. They all
send HTTP through urllib3, so ``watch_retries`` counts each failed attempt
there, as ``retries`` on the process-wide accounting total.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from igneous.storage import compression
from igneous.storage.accounting import TOTAL
from igneous.storage.base import Store, Stored, as_keys, check_key, check_write_key

BATCH = 64  # objects per concurrent request batch
LIST_PAGE = 1000  # keys per list request (S3 and GCS page size)
RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})  # answers the clients retry


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

            watch_retries()
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

    def get_stored_many(self, keys: Iterable[str]) -> Iterator[tuple[str, Stored | None]]:
        it = iter(keys)
        while part := list(itertools.islice(it, BATCH)):
            got = self.fetch(part)
            for key in part:
                yield key, got.get(key)

    def get_range(self, key: str, start: int, stop: int) -> bytes | None:
        check_key(key)
        res = self.cloudfiles.get([{"path": key, "start": start, "end": stop}], raw=True,
                                  return_dict=False, progress=False)[0]
        if res.get("error") is not None:
            raise res["error"]
        data = res.get("content")
        self.meter.add(reads=1, bytes_in=len(data or b""))
        return None if data is None else bytes(data)

    def stat(self, key: str) -> tuple[int, str | None] | None:
        # metadata requests only: size first (cloud-files' GCS head() of a missing
        # object fails and is retried with back-off), then the encoding. Also what
        # exists() uses: cloud-files' own exists() batches through GCS's batch
        # endpoint, which the emulator lacks.
        self.meter.add(reads=1)
        size = self.cloudfiles.size(check_key(key))
        if size is None:
            return None
        self.meter.add(reads=1)
        head = self.cloudfiles.head(key) or {}
        return int(size), encoding_method(head.get("Content-Encoding"))

    def list(self, prefix: str = "", *, flat: bool = False) -> Iterator[str]:
        self.meter.add(lists=1)
        for n, key in enumerate(self.cloudfiles.list(prefix=prefix, flat=flat), start=1):
            if n % LIST_PAGE == 0:
                self.meter.add(lists=1)
            if not key.endswith("/"):  # flat listings name subdirectories too
                yield key

    # -- writing ---------------------------------------------------------------

    def put_stored_many(self, items: Iterable[tuple[str, Stored]], *,
                        content_type: str | None = None, cache_control: str | None = None) -> None:
        it = iter(items)
        while batch := list(itertools.islice(it, BATCH)):
            self.write_batch(batch, content_type, cache_control)
            self.meter.add(writes=len(batch), bytes_out=sum(len(s.data) for _, s in batch))

    def write_batch(self, batch: Sequence[tuple[str, Stored]], content_type: str | None,
                    cache_control: str | None) -> None:
        """Write one batch of objects concurrently."""
        files = [{"path": check_write_key(key), "content": stored.data,
                  "compress": stored.compression} for key, stored in batch]
        self.cloudfiles.puts(files, raw=True, content_type=content_type,
                             cache_control=cache_control, progress=False)

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


class RetryWatch:
    """Counts failed HTTP attempts in urllib3, the transport under boto and
    google-cloud-storage (and so under cloud-files): an exception while
    sending or reading an answer, or an answer whose status the clients retry.
    Installed once per process (``watch_retries``); passes everything through."""

    def __init__(self) -> None:
        self.installed = False
        self.lock = threading.Lock()
        self.local = threading.local()  # depth of urlopen calls in this thread

    def install(self) -> None:
        with self.lock:
            if self.installed:
                return
            from urllib3.connectionpool import HTTPConnectionPool
            from urllib3.response import HTTPResponse

            for cls, name, watch in ((HTTPConnectionPool, "urlopen", self.watch_urlopen),
                                     (HTTPResponse, "read", self.watch_read),
                                     (HTTPResponse, "read_chunked", self.watch_read)):
                setattr(cls, name, watch(getattr(cls, name)))
            self.installed = True

    def watch_urlopen(self, urlopen: Any) -> Any:
        local = self.local

        def counted_urlopen(pool: Any, *args: Any, **kwargs: Any) -> Any:
            local.depth = getattr(local, "depth", 0) + 1
            try:
                response = urlopen(pool, *args, **kwargs)
            except Exception:
                if local.depth == 1:
                    TOTAL.add(retries=1)
                raise
            finally:
                local.depth -= 1
            if local.depth == 0 and response.status in RETRIED_STATUS:
                TOTAL.add(retries=1)
            return response

        return counted_urlopen

    def watch_read(self, read: Any) -> Any:
        local = self.local

        def counted_read(response: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return read(response, *args, **kwargs)
            except Exception:
                if getattr(local, "depth", 0) == 0:  # else urlopen counts it
                    TOTAL.add(retries=1)
                raise

        return counted_read


RETRY_WATCH = RetryWatch()


def watch_retries() -> None:
    """Start counting retried storage requests in this process (idempotent)."""
    RETRY_WATCH.install()
