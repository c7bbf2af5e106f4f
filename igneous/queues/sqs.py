"""Amazon SQS (or any SQS-compatible server) as a task queue.

``sqs://NAME`` names a queue in the account of the current AWS credentials;
``sqs://https://HOST/ACCOUNT/NAME`` gives a full queue URL (a non-AWS host is
used as the endpoint, e.g. ElasticMQ). The endpoint can also be set with
``IGNEOUS_SQS_ENDPOINT``, or with boto3's own ``AWS_ENDPOINT_URL_SQS`` /
``AWS_ENDPOINT_URL``.

How the interface maps onto SQS:

- a lease is a receive with a visibility timeout; ``Lease.attempt`` is the
  message's ``ApproximateReceiveCount``, so a delivery whose worker died
  counts as an attempt too;
- a failure makes the message visible again after ``retry_delay``; once the
  attempts reach ``max_attempts`` the payload and error go to the companion
  queue ``NAME-dead`` and the original is deleted;
- SQS has no stages, cannot list leased messages (so no ``release_all``) and
  keeps no completed count; its counts are approximate;
- what the run used (igneous.cost) goes to the companion queue
  ``NAME-usage``: each worker sends a message of its tasks' usage every
  ``USAGE_FLUSH_SEC`` and on exit; reading the totals sums every message and
  folds them into one (sent before the others are deleted: a reader killed
  in between counts that part twice, never loses it). Two readers at the
  same moment each see only part of it.

Every failure of the service (unreachable endpoint, missing queue, missing
credentials) surfaces as a one-line :class:`igneous.errors.QueueError`.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, Literal, overload
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from igneous.errors import QueueError
from igneous.queues.base import (
    MAX_LEASES,
    DeadLetter,
    Lease,
    QueueCounts,
    TaskQueue,
)

BATCH = 10  # SQS's limit for batch calls and for one receive
MAX_BATCH_BYTES = 256 * 1024  # the most conservative total size of one send batch
MAX_VISIBILITY = 12 * 3600  # SQS's longest visibility timeout
RETENTION_SEC = 14 * 24 * 3600  # keep tasks (and dead letters) as long as SQS allows
DEAD_SUFFIX = "-dead"
USAGE_SUFFIX = "-usage"
USAGE_FLUSH_SEC = 30.0  # a worker sends its tasks' usage at most this often (and on exit)
ENDPOINT_ENV = "IGNEOUS_SQS_ENDPOINT"
# Opening a queue probes it once without retries, so an unreachable endpoint
# fails in seconds; later calls ride out brief outages of a running service.
PROBE_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries={"max_attempts": 1, "mode": "standard"}
)
CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=30, retries={"max_attempts": 5, "mode": "standard"}
)

# `execute -x` on SQS: one reading of the approximate counts decides nothing.
# "Empty" needs the counts at zero on readings at least EMPTY_CONFIRM_SEC
# apart, with the worker's receives in between finding nothing; leased
# messages are waited for at most LEASED_GRACE_SEC after work was last
# pending: a receive whose response was lost leaves a message leased by
# nobody until its visibility timeout ends, and a worker still running its
# task does not need the others to wait.
EMPTY_CONFIRM_SEC = 2.0
LEASED_GRACE_SEC = 30.0

_AWS_HOST = re.compile(r"^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_STALE_HANDLE = ("ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight")


def _code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "") or ""


def _missing(e: Exception) -> bool:
    return isinstance(e, ClientError) and _code(e).endswith(
        ("NonExistentQueue", "QueueDoesNotExist")
    )


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class SQSQueue(TaskQueue):
    """A task queue on Amazon SQS; dead letters go to the queue ``NAME-dead``."""

    supports_stages = False

    def __init__(self, spec: str, *, region: str | None = None):
        if not spec.startswith("sqs://"):
            raise QueueError(f"not an SQS queue: {spec!r} (expected sqs://NAME)")
        rest = spec[len("sqs://") :]
        endpoint = os.environ.get(ENDPOINT_ENV) or None
        if rest.startswith(("http://", "https://")):
            parsed = urlparse(rest)
            self.name = parsed.path.rstrip("/").rsplit("/", 1)[-1]
            aws = _AWS_HOST.match(parsed.hostname or "")
            if aws:
                region = region or aws.group(1)
            elif endpoint is None:
                endpoint = f"{parsed.scheme}://{parsed.netloc}"
        else:
            self.name = rest.strip("/")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", self.name or ""):
            raise QueueError(
                f"bad SQS queue name {self.name!r} in {spec!r}: use 1-80 letters, digits, "
                "'-' or '_' (FIFO queues are not supported)"
            )
        self.url = f"sqs://{self.name}"
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._urls: dict[str, str] = {}
        self._idle_since: float | None = None  # see drained
        try:
            session = boto3.session.Session()
            self._sqs = session.client(
                "sqs", region_name=self.region, endpoint_url=endpoint, config=PROBE_CONFIG
            )
            # one cheap call now, so a bad endpoint or missing credentials fail at open
            self._queue_url(self.name, create=False)
            self._sqs = session.client(
                "sqs", region_name=self.region, endpoint_url=endpoint, config=CLIENT_CONFIG
            )
        except (BotoCoreError, ValueError) as e:
            raise QueueError(
                f"SQS queue {self.name}: cannot create a client: {_one_line(e)}"
            ) from None

    # -- helpers ------------------------------------------------------------
    @property
    def dead_name(self) -> str:
        return self.name + DEAD_SUFFIX

    @property
    def usage_name(self) -> str:
        return self.name + USAGE_SUFFIX

    def _error(self, e: Exception, op: str, queue: str) -> QueueError:
        """A one-line QueueError for a failed SQS call."""
        if isinstance(e, NoCredentialsError):
            return QueueError(
                f"SQS queue {queue}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            )
        if _missing(e):
            self._urls.pop(queue, None)
            return QueueError(f"SQS queue {queue} does not exist (region {self.region})")
        if isinstance(e, ClientError):
            msg = e.response.get("Error", {}).get("Message") or str(e)
            return QueueError(f"SQS queue {queue}: {op} failed: {_code(e)}: {_one_line(msg)}")
        return QueueError(f"SQS queue {queue}: {_one_line(e)}")

    def _call(self, op: str, queue: str, **kwargs: Any) -> dict:
        """Call one SQS operation, turning every failure into a QueueError."""
        try:
            return getattr(self._sqs, op)(**kwargs)
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, op, queue) from None

    @overload
    def _queue_url(self, name: str, *, create: Literal[True]) -> str: ...

    @overload
    def _queue_url(self, name: str, *, create: bool) -> str | None: ...

    def _queue_url(self, name: str, *, create: bool) -> str | None:
        """The URL of queue ``name``; None when it does not exist and ``create`` is False."""
        if name in self._urls:
            return self._urls[name]
        try:
            url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except (BotoCoreError, ClientError) as e:
            if not _missing(e):
                raise self._error(e, "get_queue_url", name) from None
            if not create:
                return None
            url = self._call(
                "create_queue",
                name,
                QueueName=name,
                Attributes={"MessageRetentionPeriod": str(RETENTION_SEC)},
            )["QueueUrl"]
        self._urls[name] = url
        return url

    def _require(self, name: str) -> str:
        url = self._queue_url(name, create=False)
        if url is None:
            raise QueueError(f"SQS queue {name} does not exist (region {self.region})")
        return url

    def _each_batch(self, items: Iterable[Any], fn: Callable[[list[Any]], None]) -> None:
        it = iter(items)
        while batch := list(islice(it, BATCH)):
            fn(batch)

    def _receive(
        self, url: str, queue: str, n: int, visibility: int, *, attributes: bool = False
    ) -> list[dict]:
        kwargs: dict[str, Any] = {
            "QueueUrl": url,
            "MaxNumberOfMessages": max(1, min(BATCH, n)),
            "VisibilityTimeout": visibility,
            "WaitTimeSeconds": 0,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if attributes:
            kwargs["MessageAttributeNames"] = ["All"]
        return self._call("receive_message", queue, **kwargs).get("Messages", [])

    def _send(self, url: str, queue: str, entries: list[dict]) -> None:
        """send_message_batch in groups within SQS's count and size limits."""
        group: list[dict] = []
        size = 0
        for entry in entries:
            nbytes = len(entry["MessageBody"].encode())  # a large task goes alone
            if group and (len(group) == BATCH or size + nbytes > MAX_BATCH_BYTES):
                self._send_group(url, queue, group)
                group, size = [], 0
            group.append(entry)
            size += nbytes
        if group:
            self._send_group(url, queue, group)

    def _send_group(self, url: str, queue: str, entries: list[dict]) -> None:
        for _ in range(3):
            resp = self._call("send_message_batch", queue, QueueUrl=url, Entries=entries)
            failed = {f["Id"]: f for f in resp.get("Failed", [])}
            if not failed:
                return
            entries = [e for e in entries if e["Id"] in failed]
            time.sleep(0.2)
        first = next(iter(failed.values()))
        raise QueueError(
            f"SQS queue {queue}: {len(failed)} tasks could not be sent: "
            f"{first.get('Code')}: {_one_line(first.get('Message', ''))}"
        )

    def _delete_handles(self, url: str, queue: str, handles: Sequence[str]) -> None:
        def remove(batch: list[str]) -> None:
            # a failed entry means the receipt expired: the task will come back,
            # which at-least-once delivery allows
            self._call(
                "delete_message_batch",
                queue,
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batch)],
            )

        self._each_batch(handles, remove)

    def _set_visibility(self, handles: Sequence[str], seconds: int) -> None:
        url = self._require(self.name)

        def change(batch: list[str]) -> None:
            self._call(
                "change_message_visibility_batch",
                self.name,
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
                    for i, h in enumerate(batch)
                ],
            )

        self._each_batch(handles, change)

    def _attributes(self, url: str, queue: str) -> dict[str, str]:
        return self._call(
            "get_queue_attributes",
            queue,
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]

    def _drain(self, url: str, queue: str) -> None:
        """Delete every visible message (purge_queue is allowed once a minute)."""
        while messages := self._receive(url, queue, BATCH, 30):
            self._delete_handles(url, queue, [m["ReceiptHandle"] for m in messages])

    # -- interface ----------------------------------------------------------
    def insert_payloads(self, payloads: Iterable[str], *, stage: int = 0) -> int:
        if stage != 0:
            raise QueueError(
                f"{self.url} cannot hold stages (asked for stage {stage}); use a local queue "
                "(a directory) for multi-stage work, or insert each stage after the last finished"
            )
        url = self._queue_url(self.name, create=True)
        total = 0
        it = iter(payloads)
        while chunk := list(islice(it, 100 * BATCH)):
            for p in chunk:
                if len(p.encode()) > MAX_BATCH_BYTES:
                    raise QueueError(
                        f"a task of {len(p.encode())} bytes is over SQS's 256 KB message limit "
                        f"({p[:80]}...); use a local or PostgreSQL queue, or store its large "
                        "arguments (igneous.task_creation.common.store_large_args)")
            entries = [{"Id": str(i), "MessageBody": p} for i, p in enumerate(chunk)]
            self._send(url, self.name, entries)
            total += len(chunk)
        return total

    def lease(self, n: int = 1, *, seconds: float = 600) -> list[Lease]:
        url = self._require(self.name)
        visibility = min(MAX_VISIBILITY, max(0, math.ceil(seconds)))
        leases: list[Lease] = []
        started = time.monotonic()
        # a receive takes at most 10; gathering more takes several, and the
        # first ones' visibility runs from their own receive while the
        # worker's renewer sees none of them before this returns: stop
        # gathering well within the lease (a slow endpoint under load)
        while len(leases) < n:
            if leases and time.monotonic() - started >= seconds / 4:
                break
            messages = self._receive(url, self.name, n - len(leases), visibility)
            if not messages:
                break
            for m in messages:
                attempt = int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1))
                lease = Lease(handle=m["ReceiptHandle"], payload=m["Body"], attempt=attempt)
                if attempt > MAX_LEASES:
                    self._bury(
                        lease, f"received {attempt - 1} times without finishing (worker died?)"
                    )
                else:
                    leases.append(lease)
        return leases

    def renew(self, lease: Lease, *, seconds: float) -> bool:
        url = self._require(self.name)
        visibility = min(MAX_VISIBILITY, max(0, math.ceil(seconds)))
        try:
            self._sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=lease.handle, VisibilityTimeout=visibility
            )
        except (BotoCoreError, ClientError) as e:
            if isinstance(e, ClientError) and _code(e).endswith(_STALE_HANDLE):
                return False
            raise self._error(e, "change_message_visibility", self.name) from None
        return True

    def renew_many(self, leases: Sequence[Lease], *, seconds: float) -> list[bool]:
        """One change_message_visibility_batch per 10 leases."""
        if not leases:
            return []
        url = self._require(self.name)
        visibility = min(MAX_VISIBILITY, max(0, math.ceil(seconds)))
        ours: list[bool] = []
        for start in range(0, len(leases), BATCH):
            batch = leases[start:start + BATCH]
            resp = self._call(
                "change_message_visibility_batch", self.name, QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": x.handle, "VisibilityTimeout": visibility}
                         for i, x in enumerate(batch)])
            failed = {f["Id"]: f for f in resp.get("Failed", [])}
            other = [f for f in failed.values() if not f.get("Code", "").endswith(_STALE_HANDLE)]
            if other:
                raise QueueError(f"SQS queue {self.name}: change_message_visibility_batch failed: "
                                 f"{other[0].get('Code')}: {_one_line(other[0].get('Message', ''))}")
            ours += [str(i) not in failed for i in range(len(batch))]
        return ours

    def delete(self, leases: Sequence[Lease]) -> None:
        if leases:
            self._delete_handles(self._require(self.name), self.name, [x.handle for x in leases])

    def fail(
        self, lease: Lease, error: str, *, max_attempts: int, retry_delay: float = 1.0
    ) -> bool:
        if lease.attempt >= max_attempts:
            self._bury(lease, error)
            return True
        # a stale receipt handle fails inside the batch call and is ignored:
        # the lease expired and the task is already back in the queue
        self._set_visibility([lease.handle], min(MAX_VISIBILITY, max(0, math.ceil(retry_delay))))
        return False

    def _bury(self, lease: Lease, error: str) -> None:
        """Send the task and its last error to NAME-dead, then delete the original."""
        dead_url = self._queue_url(self.dead_name, create=True)
        self._send(
            dead_url,
            self.dead_name,
            [
                {
                    "Id": "0",
                    "MessageBody": lease.payload,
                    "MessageAttributes": {
                        "error": {
                            "DataType": "String",
                            "StringValue": error[:4000] or "(no message)",
                        },
                        "failures": {"DataType": "Number", "StringValue": str(lease.attempt)},
                        "died_at": {"DataType": "Number", "StringValue": f"{time.time():.3f}"},
                    },
                }
            ],
        )
        self.delete([lease])

    def release(self, leases: Sequence[Lease]) -> None:
        if leases:
            self._set_visibility([x.handle for x in leases], 0)

    def release_all(self) -> int:
        raise QueueError(
            f"{self.url}: SQS cannot release leases it has not handed to this process; "
            "leased tasks come back by themselves when their visibility timeout (--lease-sec) ends"
        )

    def counts(self, *, detailed: bool = True) -> QueueCounts:
        attrs = self._attributes(self._require(self.name), self.name)
        pending = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesDelayed", 0)
        )
        leased = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
        dead = 0
        dead_url = self._queue_url(self.dead_name, create=False)
        if dead_url:
            d = self._attributes(dead_url, self.dead_name)
            dead = int(d.get("ApproximateNumberOfMessages", 0)) + int(
                d.get("ApproximateNumberOfMessagesNotVisible", 0)
            )
        stages = {0: (pending, leased)} if detailed and pending + leased else {}
        return QueueCounts(pending=pending, leased=leased, completed=None, dead=dead, stages=stages)

    usage_flush_sec = USAGE_FLUSH_SEC

    def add_usage(self, usage: Mapping[str, Mapping[str, float]]) -> None:
        if usage:
            url = self._queue_url(self.usage_name, create=True)
            self._send(url, self.usage_name, [{"Id": "0", "MessageBody": json.dumps(usage)}])

    def usage(self) -> dict[str, dict[str, float]]:
        url = self._queue_url(self.usage_name, create=False)
        if url is None:
            return {}
        total: dict[str, dict[str, float]] = {}
        handles: list[str] = []
        while messages := self._receive(url, self.usage_name, BATCH, 120):
            for m in messages:
                handles.append(m["ReceiptHandle"])
                for task, row in json.loads(m["Body"]).items():
                    mine = total.setdefault(task, {})
                    for key, value in row.items():
                        mine[key] = mine.get(key, 0) + value
        if len(handles) > 1:
            self._send(url, self.usage_name, [{"Id": "0", "MessageBody": json.dumps(total)}])
            self._delete_handles(url, self.usage_name, handles)
        elif handles:  # one message: leave it as it is
            self._set_visibility_of(url, handles, 0)
        return total

    def _set_visibility_of(self, url: str, handles: Sequence[str], seconds: int) -> None:
        self._call("change_message_visibility_batch", self.usage_name, QueueUrl=url,
                   Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
                            for i, h in enumerate(handles)])

    def purge(self) -> None:
        for name in (self.name, self.dead_name, self.usage_name):
            url = self._queue_url(name, create=False)
            if url is None:
                continue
            try:
                self._call("purge_queue", name, QueueUrl=url)
            except QueueError as e:
                if "PurgeQueueInProgress" not in str(e):
                    raise
                self._drain(url, name)

    def is_empty(self) -> bool:
        return self.counts(detailed=False).remaining == 0

    def drained(self) -> bool:
        """Nothing pending on readings EMPTY_CONFIRM_SEC apart (the worker
        receives in between), and nothing leased, or only leases older than
        LEASED_GRACE_SEC since work was last pending."""
        counts = self.counts(detailed=False)
        now = time.monotonic()
        if counts.pending:
            self._idle_since = None
            return False
        if self._idle_since is None:
            self._idle_since = now
        idle = now - self._idle_since
        if counts.leased:
            return idle >= LEASED_GRACE_SEC
        return idle >= EMPTY_CONFIRM_SEC

    def dead_letters(self, limit: int = 10) -> list[DeadLetter]:
        url = self._queue_url(self.dead_name, create=False)
        if url is None or limit <= 0:
            return []
        seen: dict[str, dict] = {}
        while len(seen) < limit:
            # peek: visibility 0 leaves the dead letters where they are
            messages = self._receive(url, self.dead_name, limit - len(seen), 0, attributes=True)
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update((m["MessageId"], m) for m in fresh)

        def attr(m: dict, key: str, default: str) -> str:
            return m.get("MessageAttributes", {}).get(key, {}).get("StringValue", default)

        letters = sorted(seen.values(), key=lambda m: float(attr(m, "died_at", "0")), reverse=True)
        return [
            DeadLetter(
                payload=m["Body"],
                failures=int(float(attr(m, "failures", "0"))),
                error=attr(m, "error", ""),
            )
            for m in letters[:limit]
        ]

    def iter_pending(self) -> Iterable[tuple[str, int]]:
        raise QueueError(
            f"{self.url}: SQS cannot list its tasks without taking them; "
            "use `igneous queue mv` to move them instead of cp"
        )

    def requeue_dead(self) -> int:
        dead_url = self._queue_url(self.dead_name, create=False)
        if dead_url is None:
            return 0
        url = self._queue_url(self.name, create=True)
        moved = 0
        while messages := self._receive(dead_url, self.dead_name, BATCH, 60):
            # send first, then delete: a crash duplicates a task, never loses one
            self._send(
                url,
                self.name,
                [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)],
            )
            self._delete_handles(dead_url, self.dead_name, [m["ReceiptHandle"] for m in messages])
            moved += len(messages)
        return moved
