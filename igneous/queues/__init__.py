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

__all__ = ["open_queue", "TaskQueue", "Lease", "QueueCounts", "DeadLetter"]

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
