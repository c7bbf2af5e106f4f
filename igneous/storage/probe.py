"""A quick look at an object store before any work is planned.

cloud-files retries a failing request for more than a minute (right for a
running job riding out a blip, wrong for a typo), so a planner first sends
one small request to each s3:// or gs:// bucket it names (``probe``), with
short timeouts and no retry loop except for throttling, and turns what
fails into one line: the endpoint is unreachable, the bucket does not exist,
the credentials are missing or refused. Throttling (503 SlowDown, 429) is
retried with exponential back-off, a bounded number of times: a busy bucket
is not an error.

The request is a HEAD of the path's ``info`` (S3) or a list of at most one
key below the path (GCS); an S3 404 is told apart from a missing bucket by
a HEAD of the bucket, a 403 (which carries no reason) by a one-key list. The client is made from the same credentials and endpoint
cloud-files uses (its secrets files, then the environment).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from igneous.errors import UserError

CONNECT_TIMEOUT = 3.0  # seconds
READ_TIMEOUT = 10.0
THROTTLE_TRIES = 6  # attempts while the store answers "slow down"
THROTTLE_BACKOFF = 0.25  # seconds before the second attempt, doubling after
THROTTLED = {429, 500, 502, 503, 504}

_lock = threading.Lock()
_done: set[tuple[str, str]] = set()  # (protocol, bucket) probed fine in this process
ENABLED = True  # workers turn it off: the planner has looked already


def probe(url: str) -> None:
    """Raise a one-line UserError if the bucket of ``url`` (s3:// or gs://)
    cannot be used; other protocols and buckets already probed pass."""
    if not ENABLED or not url.startswith(("s3://", "gs://")):
        return
    from cloudfiles.paths import extract

    where = extract(url)
    key = (where.protocol, f"{where.host or ''}/{where.bucket}")
    with _lock:
        if key in _done:
            return
    prefix = where.path.strip("/")
    if where.protocol == "s3":
        _throttled(lambda: _probe_s3(where.bucket, prefix, where.host), url)
    else:
        _throttled(lambda: _probe_gcs(where.bucket, prefix), url)
    with _lock:
        _done.add(key)


class _Throttled(Exception):
    pass


def _throttled(attempt: Any, url: str) -> None:
    delay = THROTTLE_BACKOFF
    for n in range(THROTTLE_TRIES):
        try:
            return attempt()
        except _Throttled as e:
            if n == THROTTLE_TRIES - 1:
                raise UserError(f"cannot access {url}: the store kept answering {e} after "
                                f"{THROTTLE_TRIES} tries; try again later") from None
            time.sleep(delay)
            delay *= 2


# -- S3 -----------------------------------------------------------------------

def _s3_client(bucket: str, host: str | None) -> Any:
    import boto3
    from botocore.config import Config
    from cloudfiles.secrets import aws_credentials

    try:
        secrets = aws_credentials(bucket, "s3")
    except KeyError as e:  # cloud-files reads env credentials only as a full set
        raise UserError(f"AWS credentials in the environment are incomplete: {e.args[0]} is not "
                        "set (cloud-files needs AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
                        "AWS_SESSION_TOKEN together; set it, empty if you have no session token)"
                        ) from None
    config = Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                    retries={"total_max_attempts": 1})
    return boto3.client(
        "s3", aws_access_key_id=secrets.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=secrets.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=secrets.get("AWS_SESSION_TOKEN"),
        region_name=secrets.get("AWS_DEFAULT_REGION", "us-east-1"),
        endpoint_url=host, config=config)


def _probe_s3(bucket: str, prefix: str, host: str | None) -> None:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    name = f"s3://{bucket}"
    client = _s3_client(bucket, host)
    try:
        try:
            client.head_object(Bucket=bucket, Key=f"{prefix}/info" if prefix else "info")
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:  # no such object, or no such bucket: ask the bucket
                try:
                    client.head_bucket(Bucket=bucket)
                except ClientError as e2:
                    if _s3_code(e2) in ("404", "NoSuchBucket", "NotFound"):
                        raise
                    # 403: it exists, listing it is not allowed
            elif status == 403:
                # a HEAD error has no code: list, whose answer says why (a role
                # that may not list is let through: the work itself will tell)
                try:
                    client.list_objects_v2(Bucket=bucket, Prefix=prefix.split("/")[0], MaxKeys=1)
                except ClientError as e2:
                    if _s3_code(e2) != "AccessDenied":
                        raise
            else:
                raise
    except NoCredentialsError:
        raise UserError(f"cannot access {name}: no AWS credentials found (set AWS_ACCESS_KEY_ID "
                        "and AWS_SECRET_ACCESS_KEY, or write ~/.cloudvolume/secrets/"
                        "aws-secret.json)") from None
    except EndpointConnectionError as e:
        raise UserError(f"cannot reach {name}: {_one_line(e)}; check the endpoint "
                        "(AWS_ENDPOINT_URL) and the network") from None
    except ClientError as e:
        code, status = _s3_code(e), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in THROTTLED or code in ("SlowDown", "Throttling", "RequestLimitExceeded"):
            raise _Throttled(f"{status} {code}") from None
        if code in ("NoSuchBucket", "404"):
            raise UserError(f"bucket {name} does not exist; check the path or create the "
                            "bucket") from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "AccessDenied", "AllAccessDisabled", "403"):
            raise UserError(f"access to {name} was refused ({code}): check the AWS credentials "
                            "and the bucket's permissions") from None
        raise UserError(f"cannot access {name}: {code}: {_one_line(e)}") from None
    except BotoCoreError as e:  # connect / read timeouts, bad endpoints, ...
        raise UserError(f"cannot reach {name}: {_one_line(e)}; check the endpoint "
                        "(AWS_ENDPOINT_URL) and the network") from None


def _s3_code(e: Any) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


# -- GCS ----------------------------------------------------------------------

def _probe_gcs(bucket: str, prefix: str) -> None:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    from igneous.storage.gcs import gcs_client

    name = f"gs://{bucket}"
    try:
        client = gcs_client(bucket)
        blobs = client.bucket(bucket).list_blobs(prefix=f"{prefix}/" if prefix else None,
                                                 max_results=1, retry=None,
                                                 timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        for _ in blobs:
            break
    except (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError,
            gexc.BadGateway, gexc.GatewayTimeout) as e:
        raise _Throttled(f"{e.code} {type(e).__name__}") from None
    except gexc.NotFound:
        raise UserError(f"bucket {name} does not exist; check the path or create the "
                        "bucket") from None
    except (gexc.Forbidden, gexc.Unauthorized) as e:
        raise UserError(f"access to {name} was refused ({e.code}): check the Google credentials "
                        "and the bucket's permissions") from None
    except auth_exc.GoogleAuthError as e:
        raise UserError(f"cannot access {name}: no usable Google credentials ({_one_line(e)}); "
                        "set GOOGLE_APPLICATION_CREDENTIALS or write ~/.cloudvolume/secrets/"
                        "google-secret.json") from None
    except gexc.GoogleAPICallError as e:
        raise UserError(f"cannot access {name}: {_one_line(e)}") from None
    except (OSError, ValueError) as e:  # requests' connection errors and timeouts are OSErrors
        raise UserError(f"cannot reach {name}: {_one_line(e)}; check the endpoint "
                        "(STORAGE_EMULATOR_HOST for an emulator) and the network") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."
