"""A loopback HTTP server in front of an emulator that answers some requests
itself: every one refused (403), or the first few throttled (503 SlowDown /
429), the rest forwarded unchanged. Runs in a thread of the test process on
127.0.0.1; stopped when its context ends."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

S3_ERROR = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            "<Message>{message}</Message></Error>")
GCS_ERROR = '{{"error": {{"code": {status}, "message": "{message}"}}}}'


@contextmanager
def answering(upstream: str, *, flavor: str, refuse: bool = False,
              throttle: int = 0) -> Iterator[tuple[str, dict]]:
    """Yield (this server's URL, its tally {"answered": n, "forwarded": n}).

    ``flavor``: "s3" (XML errors) or "gcs" (JSON errors). ``refuse``: every
    request gets 403. ``throttle``: the first N requests get 503 SlowDown."""
    target = urlparse(upstream)
    tally = {"answered": 0, "forwarded": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _answer(self, status: int, code: str, message: str) -> None:
            if flavor == "s3":
                body, kind = S3_ERROR.format(code=code, message=message), "application/xml"
            else:
                body, kind = GCS_ERROR.format(status=status, message=message), "application/json"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with lock:
                n = tally["answered"] + tally["forwarded"]
                own = refuse or n < throttle
                tally["answered" if own else "forwarded"] += 1
            if refuse:
                return self._answer(403, "InvalidAccessKeyId",
                                    "The AWS Access Key Id you provided does not exist")
            if own:
                return self._answer(503, "SlowDown", "Please reduce your request rate.")
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = target.netloc
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tally
    finally:
        server.shutdown()
        server.server_close()
