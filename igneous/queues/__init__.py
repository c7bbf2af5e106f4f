"""Queue backends, chosen by the ``--queue`` value.

=====================  ==============================================
value                  backend
=====================  ==============================================
(none)                 run at once in a local process pool (``-p N``)
a path, ``fq://path``  durable local queue (SQLite, WAL) in that folder;
                       a python-task-queue FileQueue there (``queue/``
                       folder, no ``queue.sqlite``) is served as one
                       (igneous.queues.ptq)
``sqs://name``         Amazon SQS (or any SQS-compatible endpoint)
``postgresql://...``   PostgreSQL (``postgres://`` too; ``?queue=NAME``)
=====================  ==============================================
"""

from __future__ import annotations

import os
import re

from igneous.errors import QueueError
from igneous.queues.base import DeadLetter, Lease, QueueCounts, TaskQueue

__all__ = ["open_queue", "check_queue_spec", "TaskQueue", "Lease", "QueueCounts", "DeadLetter"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def open_queue(spec: str, *, create: bool = True, region: str | None = None) -> TaskQueue:
    """Open the queue named by a ``--queue`` value.

    ``create=False`` refuses to make a new local queue (for commands that only
    read one, like ``execute`` and ``queue status``).
    """
    if not spec:
        raise QueueError("no queue given")
    m = _SCHEME.match(spec)
    scheme = m.group(1).lower() if m else None
    if scheme in (None, "fq", "file"):
        from igneous.queues.local import LocalQueue

        if scheme == "file":
            spec = spec[len("file://"):]
        elif scheme == "fq":
            spec = spec[len("fq://"):]
        # -- python-task-queue FileQueue (igneous.compat): detected by its layout
        from igneous.queues.local import DB_NAME
        from igneous.queues.ptq import is_ptq_dir

        if is_ptq_dir(spec) and not os.path.exists(os.path.join(spec, DB_NAME)):
            from igneous.queues.ptq import PTQFileQueue

            return PTQFileQueue(spec)
        return LocalQueue(spec, create=create)
    if scheme == "sqs":
        from igneous.queues.sqs import SQSQueue

        return SQSQueue(spec, region=region)
    if scheme in ("postgresql", "postgres"):
        from igneous.queues.postgres import PostgresQueue

        return PostgresQueue(spec, create=create)
    raise QueueError(
        f"unknown queue scheme {scheme!r} in {spec!r}; use a directory path, fq://PATH, sqs://NAME "
        "or postgresql://HOST/DB?queue=NAME"
    )


_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_queue_spec(spec: str | None) -> str | None:
    """Refuse a ``--queue`` that cannot hold a queue, before anything is planned
    (a planner writes info files; the queue is opened after)."""
    if not spec:
        return spec
    m = _SCHEME.match(spec)
    scheme = m.group(1).lower() if m else None
    if scheme not in (None, "fq", "file", "sqs", "postgresql", "postgres"):
        raise QueueError(f"unknown queue scheme {scheme!r} in {spec!r}; use a directory path, "
                        "fq://PATH, sqs://NAME or postgresql://HOST/DB?queue=NAME")
    if scheme in (None, "fq", "file"):
        local_queue_path(spec[len(m.group(0)):] if m else spec)
    return spec


def local_queue_path(path: str) -> None:
    """A local queue directory must be a directory (or creatable) on a writable
    filesystem, and any queue database in it must be an SQLite file."""
    from igneous.queues.local import DB_NAME

    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise QueueError(f"queue path {path} is a file; a local queue is a directory")
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise QueueError(f"queue path {path} is under {existing}, which is not a directory")
    if _read_only(existing):
        raise QueueError(f"queue path {path} is on a read-only filesystem; choose a writable place")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise QueueError(f"queue path {path}: no permission to write in {existing}")
    db = os.path.join(path, DB_NAME)
    if os.path.exists(db):
        try:
            with open(db, "rb") as f:
                head = f.read(len(_SQLITE_MAGIC))
        except OSError as e:
            raise QueueError(f"cannot read queue database {db}: {e.strerror}") from None
        if head and head != _SQLITE_MAGIC:
            raise QueueError(f"{db} is not a queue database (not an SQLite file); give another "
                            "queue directory")


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
