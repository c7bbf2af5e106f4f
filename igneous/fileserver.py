"""The HTTP file server behind ``igneous view``: layers published through
the storage contract, on 127.0.0.1 only.

Each mount ``/NAME/`` is a Store (a layer directory or any layer URL). A
request for ``/NAME/KEY`` is answered with the object ``KEY``: CloudVolume
stores compressed objects as ``KEY.gz`` (or ``.br``, ``.zstd``, ...) while
Neuroglancer asks for ``KEY``; the Store finds the variant, gzip objects are
sent as they are with ``Content-Encoding: gzip`` to clients that take it and
everything else decompressed. Range requests (how Neuroglancer reads shard
files) are answered with 206, reading only the bytes asked for. Keys that
leave the mount (``..``, plain or percent-encoded) are refused with 404.
Every request is logged with its status, because Neuroglancer fetches chunks
in a Web Worker and draws a missing chunk as zeros without telling anyone.
"""

from __future__ import annotations

import posixpath
import re
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from igneous.errors import UserError
from igneous.storage import Store, check_key, open_store

HOST = "127.0.0.1"  # loopback only: the server has no authentication
DEFAULT_PORT = 1337
PORT_TRIES = 100


class Request(NamedTuple):
    """One answered request, as the file server logged it."""

    method: str
    path: str
    status: int


class LayerServer(ThreadingHTTPServer):
    """Serves each mount (``{NAME: layer path or URL}``) at ``/NAME/`` on
    127.0.0.1 and logs every request; ``overrides`` ({URL path: body}) are
    served instead of the stored objects."""

    daemon_threads = True

    def __init__(self, mounts: dict[str, str], port: int = 0,
                 on_request: Callable[[Request], None] | None = None,
                 overrides: dict[str, bytes] | None = None):
        self.stores: dict[str, Store] = {name: open_store(path) for name, path in mounts.items()}
        self.overrides = dict(overrides or {})
        self.requests: list[Request] = []
        self.on_request = on_request
        self._lock = threading.Lock()
        super().__init__((HOST, port), LayerRequestHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def start(self) -> LayerServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="igneous-view-files", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
        if self.on_request is not None:
            self.on_request(request)

    def locate(self, url_path: str) -> tuple[Store, str] | None:
        """(store, key) for a URL path, or None: outside every mount, a
        directory, or a key leaving its mount."""
        parts = urllib.parse.unquote(url_path).lstrip("/").split("/", 1)
        store = self.stores.get(parts[0])
        if store is None or len(parts) < 2:
            return None
        key = posixpath.normpath(parts[1])
        try:
            return store, check_key(key)
        except ValueError:  # "..", absolute, "." (the mount itself)
            return None


def bind_server(mounts: dict[str, str], port: int = DEFAULT_PORT,
                on_request: Callable[[Request], None] | None = None,
                overrides: dict[str, bytes] | None = None) -> LayerServer:
    """A LayerServer on ``port``, or the next free one after it (0: any free port)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, not {port}")
    tries = 1 if port == 0 else min(PORT_TRIES, 65536 - port)
    for candidate in range(port, port + tries):
        try:
            return LayerServer(mounts, candidate, on_request, overrides)
        except OSError:
            continue
    raise UserError(f"no free port on {HOST} in {port}..{port + tries - 1}; give another --port")


class LayerRequestHandler(BaseHTTPRequestHandler):
    """GET/HEAD/OPTIONS with CORS, stored-compression mapping and byte ranges."""

    server: LayerServer
    protocol_version = "HTTP/1.1"

    def do_OPTIONS(self) -> None:  # noqa: N802 (http.server naming)
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Max-Age", "86400")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self._log(204)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests go to the server's log instead of stderr."""

    def _serve(self, body: bool) -> None:
        url_path = urllib.parse.urlsplit(self.path).path
        target = self.server.locate(url_path)
        override = self.server.overrides.get(posixpath.normpath(urllib.parse.unquote(url_path)))
        found = target[0].stat(target[1]) if target is not None and override is None else None
        if found is None and override is None:
            self._error(404, "not found")
            return
        range_header = self.headers.get("Range")
        headers = {"Content-Type": content_type(url_path)}
        # whole objects in memory, except plain ones: those are read only where asked
        # (shard files can be large and are read in small ranges)
        blob: bytes | None = None
        size = 0
        if override is not None:
            blob = override
        elif target is not None and found is not None:
            store, key = target
            size, how = found
            if how == "gzip" and not range_header \
                    and "gzip" in self.headers.get("Accept-Encoding", ""):
                stored = store.get_stored(key)
                blob = b"" if stored is None else stored.data
                headers["Content-Encoding"] = "gzip"
            elif how is not None:
                blob = store.get(key) or b""
        if blob is not None:
            size = len(blob)
        status, span = 200, (0, size)
        if range_header:
            asked = byte_range(range_header, size)
            if asked is None:
                self._error(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
                return
            span = asked
            if span != (0, size):
                status = 206
                headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{size}"
        headers["Accept-Ranges"] = "bytes"
        data = b""
        if body:
            if blob is not None:
                data = blob[span[0]:span[1]]
            elif target is not None:
                data = target[0].get_range(target[1], *span) or b""
        self._send(status, data, headers, length=span[1] - span[0])

    def _send(self, status: int, data: bytes, headers: dict[str, str], length: int) -> None:
        self.send_response(status)
        self._cors()
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if data:
            self.wfile.write(data)
        self._log(status)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = message.encode()
        self._send(status, b"" if self.command == "HEAD" else body,
                   {"Content-Type": "text/plain", **(headers or {})}, length=len(body))

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers",
                         "Content-Range, Content-Length, Content-Encoding, Accept-Ranges")

    def _log(self, status: int) -> None:
        self.server.record(Request(self.command, urllib.parse.urlsplit(self.path).path, status))


def content_type(path: str) -> str:
    return "application/json" if posixpath.basename(path) == "info" else "application/octet-stream"


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single ``bytes=`` range; the whole object for forms we don't serve."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or match.group(1) == match.group(2) == "":
        return 0, size  # multiple ranges or garbage: answer with the whole object (allowed)
    first, last = match.groups()
    if first == "":
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        stop = size if last == "" else min(size, int(last) + 1)
    if start >= size or start >= stop:
        return None
    return start, stop
