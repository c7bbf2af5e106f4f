"""``GCSStore``: gs:// objects read and written with one bounded retry policy.

Under cloud-files a GCS request is retried by two loops, one inside the
other: cloud-files' (7 attempts, jittered waits of up to 60 s) around
google-cloud-storage's default policy (jittered exponential waits of up to
60 s until 120 s have passed). A request that keeps failing is thus retried
for 14 to 21 minutes before its error surfaces: longer than a worker's
lease (600 s by default), so the task is leased again while the first
worker still sleeps, and a run that is merely throttled looks hung. Neither
loop can be configured from outside cloud-files (it passes no ``retry=``
to google-cloud-storage and builds its own loop at import time), and
changing either one would mean patching a third-party library.

So the requests this package sends for its own objects on GCS (reads, byte
ranges, writes, metadata) go to google-cloud-storage directly, through its
public API, with one explicit policy (``RetryPolicy``): exponential waits
with full jitter (a random wait between 0 and the current cap), the cap
starting at ``first_wait`` and doubling up to ``max_wait``, until
``deadline`` seconds have passed since the first attempt; then the last
error is raised. What is retried is google-cloud-storage's own list of
transient errors (429, 408, 5xx, reset connections, short bodies, timeouts).
Every failed attempt is counted as ``retries`` by the transport watch
(igneous.storage.cloud.watch_retries). ``IGNEOUS_GCS_RETRY_MAX_WAIT`` and
``IGNEOUS_GCS_RETRY_DEADLINE`` (seconds) change the cap and the deadline.

Listing and deleting stay with cloud-files (``CloudStore``), and so does
what CloudVolume reads and writes itself (sharded scales, mesh and skeleton
read-back): those keep cloud-files' nested retries (docs/storage.md).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from igneous.errors import UserError
from igneous.storage.base import Stored, check_key, check_write_key
from igneous.storage.cloud import CloudStore, encoding_method, watch_retries

THREADS = 16  # concurrent requests per batch, each on a pooled client of its own
REQUEST_TIMEOUT = (20.0, 60.0)  # seconds to connect, to read an answer
CONTENT_ENCODING = {"gzip": "gzip", "br": "br", "zstd": "zstd", "xz": "xz", "bzip2": "bz2"}


@dataclass(frozen=True)
class RetryPolicy:
    """Waits between attempts: random in [0, cap], the cap ``first_wait``,
    doubling up to ``max_wait``; no attempt starts after ``deadline`` seconds."""

    first_wait: float = 0.5
    max_wait: float = 16.0
    deadline: float = 300.0

    @classmethod
    def from_environment(cls) -> RetryPolicy:
        """The default policy with ``IGNEOUS_GCS_RETRY_MAX_WAIT`` /
        ``IGNEOUS_GCS_RETRY_DEADLINE`` applied (a one-line UserError if bad)."""
        values: dict[str, float] = {}
        for name, field in (("IGNEOUS_GCS_RETRY_MAX_WAIT", "max_wait"),
                            ("IGNEOUS_GCS_RETRY_DEADLINE", "deadline")):
            text = os.environ.get(name, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not 0 < value < float("inf"):
                raise UserError(f"{name}={text!r} is not a positive number of seconds; "
                                "set it to e.g. 16, or unset it")
            values[field] = value
        policy = cls(**values)
        return cls(min(policy.first_wait, policy.max_wait), policy.max_wait, policy.deadline)

    def google_retry(self) -> Any:
        """The policy as a google.api_core Retry over google-cloud-storage's
        own predicate of transient errors."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_delay(initial=self.first_wait, maximum=self.max_wait,
                                        multiplier=2.0).with_timeout(self.deadline)


def gcs_client(bucket: str) -> Any:
    """A google-cloud-storage Client with the credentials cloud-files would use
    for ``bucket`` (its secrets files, else the machine's default
    credentials; $STORAGE_EMULATOR_HOST points it at an emulator)."""
    from cloudfiles.secrets import google_credentials
    from google.cloud.storage import Client
    from google.oauth2 import service_account

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # (cloud-files warns over many lines where no secrets file is set)
        project, secrets = google_credentials(bucket)
    if isinstance(secrets, dict):
        secrets = service_account.Credentials.from_service_account_info(secrets)
    return Client(credentials=secrets, project=project)


class BucketPool:
    """Idle google-cloud-storage Buckets (each with its own client and HTTP
    connection pool), kept per process, bucket and GCS environment, so
    requests reuse connections; a request takes one and gives it back."""

    ENVIRONMENT = ("STORAGE_EMULATOR_HOST", "CLOUD_FILES_DIR", "CLOUD_VOLUME_DIR",
                   "GOOGLE_APPLICATION_CREDENTIALS")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: dict[tuple, list[Any]] = {}

    def where(self, bucket: str) -> tuple:
        return (os.getpid(), bucket, *(os.environ.get(v) for v in self.ENVIRONMENT))

    @contextlib.contextmanager
    def bucket(self, name: str) -> Iterator[Any]:
        where = self.where(name)
        with self.lock:
            idle = self.idle.setdefault(where, [])
            bucket = idle.pop() if idle else None
        if bucket is None:
            watch_retries()
            bucket = gcs_client(name).bucket(name)
        yield bucket
        with self.lock:
            self.idle.setdefault(where, []).append(bucket)


BUCKETS = BucketPool()


class GCSStore(CloudStore):
    """Objects below a gs:// path (see the module docstring)."""

    def __init__(self, url: str):
        from cloudfiles.paths import extract

        super().__init__(url)
        where = extract(self.url)
        self.bucket_name = where.bucket
        self.prefix = where.path.strip("/")
        self.policy = RetryPolicy.from_environment()
        self.retry = self.policy.google_retry()

    def bucket(self) -> contextlib.AbstractContextManager[Any]:
        """A google-cloud-storage Bucket for one request (from ``BUCKETS``)."""
        return BUCKETS.bucket(self.bucket_name)

    def name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def concurrently(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        """``[fn(item) ...]``, up to THREADS at a time; the first error is raised."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(THREADS, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- requests ----------------------------------------------------------------

    def download(self, key: str, start: int | None = None,
                 stop: int | None = None) -> tuple[bytes, str | None] | None:
        """(bytes as stored, compression) of ``key`` (or of [start, stop)), or None."""
        from google.api_core.exceptions import NotFound

        whole = start is None and stop is None
        with self.bucket() as bucket:
            blob = bucket.blob(self.name(key))
            try:
                data = blob.download_as_bytes(
                    start=start, end=None if stop is None else stop - 1, raw_download=True,
                    checksum="md5" if whole else None, retry=self.retry, timeout=REQUEST_TIMEOUT)
            except NotFound:
                return None
        return data, encoding_method(blob.content_encoding)

    def upload(self, key: str, stored: Stored, content_type: str | None,
               cache_control: str | None) -> None:
        with self.bucket() as bucket:
            self.upload_blob(bucket.blob(self.name(check_write_key(key))), stored, content_type,
                             cache_control)

    def upload_blob(self, blob: Any, stored: Stored, content_type: str | None,
                    cache_control: str | None) -> None:
        if stored.compression is not None:
            blob.content_encoding = CONTENT_ENCODING[stored.compression]
        if cache_control:
            blob.cache_control = cache_control
        # the server refuses a body whose MD5 differs: a damaged upload is retried, never stored
        blob.md5_hash = base64.b64encode(hashlib.md5(stored.data).digest()).decode()
        blob.upload_from_string(stored.data, content_type=content_type, retry=self.retry,
                                timeout=REQUEST_TIMEOUT)

    # -- the contract ------------------------------------------------------------

    def fetch(self, keys: list[str]) -> dict[str, Stored | None]:
        for key in keys:
            check_key(key)
        got = self.concurrently(self.download, keys)
        self.meter.add(reads=len(keys), bytes_in=sum(len(g[0]) for g in got if g is not None))
        return {key: None if g is None else Stored(g[0], g[1]) for key, g in zip(keys, got)}

    def get_range(self, key: str, start: int, stop: int) -> bytes | None:
        got = self.download(check_key(key), start, stop)
        self.meter.add(reads=1, bytes_in=0 if got is None else len(got[0]))
        return None if got is None else got[0]

    def stat(self, key: str) -> tuple[int, str | None] | None:
        with self.bucket() as bucket:
            blob = bucket.get_blob(self.name(check_key(key)), retry=self.retry,
                                   timeout=REQUEST_TIMEOUT)
        self.meter.add(reads=1)
        if blob is None:
            return None
        return int(blob.size), encoding_method(blob.content_encoding)

    def write_batch(self, batch: Sequence[tuple[str, Stored]], content_type: str | None,
                    cache_control: str | None) -> None:
        self.concurrently(lambda item: self.upload(item[0], item[1], content_type, cache_control),
                          batch)
