"""A loopback HTTP/1.1 reverse proxy in front of a storage emulator (moto's S3,
the GCS emulator) that adds latency, injects transient faults and counts
requests by billing class.

- ``latency``: seconds added to every request (before it is forwarded);
- ``rate`` / ``max_faults``: each request is faulted with probability ``rate``
  until ``max_faults`` faults have been injected, then the proxy stops
  faulting by itself; the draws come from ``random.Random(seed)``;
- ``every``: sustained throttling instead: every ``every``-th request (counted
  from arming) is faulted, again until ``max_faults`` faults were injected;
- fault kinds (``KINDS``): ``500`` (InternalError) and ``503`` (SlowDown),
  with the body each cloud sends (S3: XML, GCS: JSON); ``reset``: the
  connection is reset (RST) after the request was read, before it reaches the
  server; ``truncate``: the server's answer keeps its Content-Length but only
  half of the body is sent before the connection is reset;
- counts: requests by billing class (``read``: GET/HEAD of an object,
  ``write``: PUT/POST, ``list``: GET on a bucket's listing, ``delete``:
  DELETE or a batch delete) and faults by kind: ``counts()`` here, or
  ``GET /__proxy__/counts`` (JSON) from another process.

In this process: ``with FaultProxy(upstream, flavor="s3") as proxy: proxy.url``
(a thread). As a process stopped by PID (bench/ uses it)::

    python -m tests.fault_proxy UPSTREAM --flavor s3 --port 0 --latency 0.05

prints its URL on the first line of stdout. ``POST /__proxy__/reset`` zeroes
the counts; ``POST /__proxy__/faults`` with JSON ``{"rate": .., "max_faults":
.., "every": ..}`` re-arms the faults. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("500", "503", "reset", "truncate")
CLASSES = ("read", "write", "list", "delete")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "content-length"}
CONTROL = "/__proxy__/"
S3_LIST_PARAMS = ("list-type", "prefix", "delimiter", "marker", "continuation-token", "max-keys")


def s3_error(code: str, message: str) -> tuple[str, bytes]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>FAULTPROXY</RequestId></Error>")
    return "application/xml", body.encode()


def gcs_error(status: int, reason: str, message: str) -> tuple[str, bytes]:
    body = {"error": {"code": status, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}
    return "application/json; charset=UTF-8", json.dumps(body).encode()


ERROR_BODIES = {
    ("s3", 500): s3_error("InternalError", "We encountered an internal error. Please try again."),
    ("s3", 503): s3_error("SlowDown", "Please reduce your request rate."),
    ("gcs", 500): gcs_error(500, "backendError", "Backend Error"),
    ("gcs", 503): gcs_error(503, "backendError",
                            "We encountered an internal error. Please try again."),
}


def billing_class(method: str, target: str, flavor: str) -> str:
    """What a cloud bills this request as: read, write, list or delete."""
    parts = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    path = parts.path
    if method == "DELETE" or (method == "POST" and "delete" in query):
        return "delete"
    if method in ("PUT", "POST", "PATCH"):
        return "write"
    if flavor == "gcs":
        # JSON API: .../b/BUCKET/o lists, .../b/BUCKET/o/NAME reads an object
        return "list" if method == "GET" and path.rstrip("/").endswith("/o") else "read"
    segments = [s for s in path.split("/") if s]
    if method == "GET" and (len(segments) <= 1 or any(p in query for p in S3_LIST_PARAMS)):
        return "list"
    return "read"


class FaultProxy:
    """The proxy server (see the module docstring); a context manager that
    serves from a daemon thread."""

    def __init__(self, upstream: str, *, flavor: str = "s3", latency: float = 0.0,
                 rate: float = 0.0, max_faults: int = 0, every: int = 0,
                 kinds: tuple[str, ...] = KINDS, seed: int = 0, port: int = 0):
        if flavor not in ("s3", "gcs"):
            raise ValueError(f"flavor must be s3 or gcs, not {flavor!r}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {KINDS}")
        up = urllib.parse.urlsplit(upstream)
        self.upstream = (up.hostname or "127.0.0.1", up.port or 80)
        self.flavor = flavor
        self.latency = latency
        self.kinds = tuple(kinds)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self.rate = 0.0
        self.faults_left = 0
        self.every = 0
        self._since_armed = 0
        self.arm(rate=rate, max_faults=max_faults, every=every)
        self.server = ProxyServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    # -- settings and counts ---------------------------------------------------

    def arm(self, *, rate: float = 0.0, max_faults: int, every: int = 0) -> None:
        """Fault each request with probability ``rate`` (or, with ``every`` > 0,
        every ``every``-th request from now on), ``max_faults`` times at most."""
        if not 0.0 <= rate <= 1.0 or max_faults < 0 or every < 0:
            raise ValueError("rate must be in [0, 1], max_faults >= 0 and every >= 0")
        with self._lock:
            self.rate, self.faults_left, self.every = rate, max_faults, every
            self._since_armed = 0

    def disarm(self) -> None:
        self.arm(rate=0.0, max_faults=0)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    def counts(self) -> dict[str, Any]:
        """``{"read": n, "write": n, "list": n, "delete": n, "requests": total,
        "faults": {kind: n}, "faults_total": n}``."""
        with self._lock:
            out: dict[str, Any] = {c: self._requests[c] for c in CLASSES}
            out["requests"] = sum(self._requests.values())
            out["faults"] = {k: self._faults[k] for k in KINDS}
            out["faults_total"] = sum(self._faults.values())
        return out

    def decide(self, method: str, target: str) -> str | None:
        """Count one request; the fault to inject into it, if any."""
        with self._lock:
            self._requests[billing_class(method, target, self.flavor)] += 1
            self._since_armed += 1
            if self.faults_left <= 0:
                return None
            if self.every:
                if self._since_armed % self.every:
                    return None
            elif self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            if kind == "truncate" and method == "HEAD":
                kind = "reset"  # nothing to truncate
            self.faults_left -= 1
            self._faults[kind] += 1
            return kind

    # -- running ---------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProxyServer(ThreadingHTTPServer):
    # socketserver's backlog of 5 drops (or resets) bursts of new client
    # connections, which the clients then count as failed attempts
    request_queue_size = 512


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(ProxyHandler):
        owner = proxy

    return Handler


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the cloud clients expect
    owner: FaultProxy
    upstream_conn: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:
        self.relay()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def relay(self) -> None:
        body = self.read_body()
        if self.path.startswith(CONTROL):
            return self.control(body)
        owner = self.owner
        fault = owner.decide(self.command, self.path)
        if owner.latency > 0:
            time.sleep(owner.latency)
        if fault == "reset":
            return self.reset()
        if fault in ("500", "503"):
            ctype, payload = ERROR_BODIES[owner.flavor, int(fault)]
            return self.answer(int(fault), payload, ctype, extra={"Retry-After": "0"})
        status, headers, payload = self.forward(body)
        if fault == "truncate" and len(payload) < 2:
            fault = "reset"  # too short to cut: reset instead
        if fault == "reset":
            return self.reset()
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":  # no body: the object's own length
            self.send_header("Content-Length", dict(headers).get("Content-Length", "0"))
            return self.end_headers()
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if fault == "truncate":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            return self.reset()
        self.wfile.write(payload)

    def forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request upstream (a kept-alive connection per client connection)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):  # a kept-alive upstream connection may have gone stale
            if self.upstream_conn is None:
                self.upstream_conn = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
            try:
                self.upstream_conn.request(self.command, self.path, body=body, headers=headers)
                resp = self.upstream_conn.getresponse()
                payload = resp.read()
                return resp.status, resp.getheaders(), payload
            except (http.client.HTTPException, OSError):
                self.upstream_conn.close()
                self.upstream_conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def answer(self, status: int, payload: bytes, ctype: str,
               extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def reset(self) -> None:
        """Abort the client connection with a TCP RST."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def control(self, body: bytes) -> None:
        owner = self.owner
        if self.command == "GET" and self.path == CONTROL + "counts":
            payload = json.dumps(owner.counts()).encode()
        elif self.command == "POST" and self.path == CONTROL + "reset":
            owner.reset_counts()
            payload = b"{}"
        elif self.command == "POST" and self.path == CONTROL + "faults":
            settings = json.loads(body or b"{}")
            owner.arm(rate=float(settings.get("rate", 0)),
                      max_faults=int(settings.get("max_faults", 0)),
                      every=int(settings.get("every", 0)))
            payload = b"{}"
        else:
            return self.answer(404, b'{"error": "unknown control path"}', "application/json")
        self.answer(200, payload, "application/json")

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the connection was reset on purpose
        if self.upstream_conn is not None:
            self.upstream_conn.close()


def control(url: str, what: str, settings: dict | None = None) -> dict:
    """Ask a proxy (maybe in another process) for ``counts``, to ``reset`` its
    counts, or to re-arm its ``faults`` with ``settings``."""
    import urllib.request

    data = None if settings is None and what == "counts" else json.dumps(settings or {}).encode()
    request = urllib.request.Request(f"{url}{CONTROL}{what}", data=data,
                                     method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("upstream", help="the emulator's URL, e.g. http://127.0.0.1:5000")
    ap.add_argument("--flavor", choices=("s3", "gcs"), default="s3")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--max-faults", type=int, default=0)
    ap.add_argument("--every", type=int, default=0, help="fault every N-th request instead")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    proxy = FaultProxy(args.upstream, flavor=args.flavor, latency=args.latency, rate=args.rate,
                       max_faults=args.max_faults, every=args.every,
                       kinds=tuple(args.kinds.split(",")),
                       seed=args.seed, port=args.port)
    print(proxy.url, flush=True)
    try:
        proxy.server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.server.server_close()


if __name__ == "__main__":
    main()
