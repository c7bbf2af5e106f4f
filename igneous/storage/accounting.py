"""Request and byte accounting for every store.

Each store counts its requests by billing class (read, write, list, delete:
what cloud providers charge for) and the bytes moved (as stored, i.e. after
compression), both on its own ``Meter`` and on the process-wide ``TOTAL``.
A caller measures a piece of work by differencing two snapshots::

    before = storage.totals()
    run_task()
    used = storage.totals() - before   # a Counts

CloudVolume's own IO (sharded scales, mesh / skeleton read-back) is not
seen here: it does not go through a Store.

``retries`` counts storage requests that failed transiently (a 5xx or 429
answer, a reset connection, a body cut short) and were therefore sent again,
whichever layer retried them (cloud-files, boto, google-cloud-storage):
igneous.storage.cloud watches the HTTP transport they share and adds each
one to ``TOTAL`` only (the transport does not know which store asked).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Counts:
    """Requests by billing class, bytes moved (``bytes_in``: read from storage)
    and requests retried after a transient failure (not a billing class:
    ``requests`` leaves them out, the retried request is counted once)."""

    reads: int = 0
    writes: int = 0
    lists: int = 0
    deletes: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    retries: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    @property
    def requests(self) -> int:
        return self.reads + self.writes + self.lists + self.deletes

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Meter:
    """Thread-safe running Counts; ``parent`` (if any) gets every addition too.

    Stores call ``add`` once per request (tens of thousands of times in a
    merge task that reads small fragments), so it adds plain integers in
    place and builds a ``Counts`` only when asked for one."""

    def __init__(self, parent: Meter | None = None):
        self._lock = threading.Lock()
        self._values = [0] * len(fields(Counts))  # in Counts' field order
        self.parent = parent

    def add(self, *, reads: int = 0, writes: int = 0, lists: int = 0, deletes: int = 0,
            bytes_in: int = 0, bytes_out: int = 0, retries: int = 0) -> None:
        meter: Meter | None = self
        while meter is not None:
            with meter._lock:
                v = meter._values
                v[0] += reads
                v[1] += writes
                v[2] += lists
                v[3] += deletes
                v[4] += bytes_in
                v[5] += bytes_out
                v[6] += retries
            meter = meter.parent

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(*self._values)


TOTAL = Meter()


def totals() -> Counts:
    """Everything every store in this process has done so far, with what
    CloudVolume and tensorstore did themselves (igneous.storage.cvcount)."""
    from igneous.storage.cvcount import tensorstore_counts

    return TOTAL.snapshot() + Counts(**tensorstore_counts())
