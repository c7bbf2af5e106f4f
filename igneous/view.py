"""``igneous view``: look at local layers in Neuroglancer, with no internet.

Two servers run on 127.0.0.1 in this process:

- a file server (``LayerServer``) that publishes each layer directory under
  ``/NAME/`` with CORS headers. CloudVolume stores compressed files on local
  disk as ``FILE.gz`` (or ``.br``/``.zstd``) while Neuroglancer asks for
  ``FILE``: the server maps one to the other, sending gzip files as they are
  with ``Content-Encoding: gzip`` and decompressing the rest. Range requests
  (how Neuroglancer reads shard files) are answered with 206. Every request
  is logged with its status, because Neuroglancer fetches chunks in a Web
  Worker and draws a missing chunk as zeros without telling anyone;
- the Neuroglancer client bundled in the ``neuroglancer`` Python package,
  served by that package's own server, holding a viewer state that shows each
  layer (image or segmentation per its info; for segmentations the largest
  objects that have meshes or skeletons are selected so they render).

``--ng URL`` instead prints a link to another Neuroglancer page carrying the
same state in its URL (that page must be reachable from the browser).
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import re
import threading
import urllib.parse
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from igneous.errors import UserError
from igneous.layers import LayerInfo, normalize_path

HOST = "127.0.0.1"
DEFAULT_PORT = 1337
PORT_TRIES = 100
MAX_SEGMENTS = 16  # objects selected per segmentation layer: enough to see, quick to draw
COMPRESSED_SUFFIXES = (".gz", ".br", ".zstd")
LEGACY_MESH_INFO = {"@type": "neuroglancer_legacy_mesh"}
FIT_PIXELS = 300  # without --pos, the first layer's largest side is drawn this many pixels long


class Request(NamedTuple):
    """One answered request, as the file server logged it."""

    method: str
    path: str
    status: int


@dataclass
class Layer:
    """A local layer to show: where it is on disk and what Neuroglancer gets."""

    name: str
    directory: str
    info: dict
    mount: str = ""  # URL path segment the file server publishes the directory under
    segments: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "segmentation" if self.info.get("type") == "segmentation" else "image"

    @property
    def resolution(self) -> list[float]:
        return list(self.info["scales"][0]["resolution"])

    @property
    def center(self) -> list[float]:
        scale = self.info["scales"][0]
        return [o + s / 2 for o, s in zip(scale.get("voxel_offset", (0, 0, 0)), scale["size"])]

    def subdirectory(self, key: str) -> str | None:
        """The mesh or skeleton directory the info names, if it exists on disk."""
        value = self.info.get(key)
        if not isinstance(value, str) or not value:
            return None
        path = os.path.normpath(os.path.join(self.directory, value))
        return path if os.path.isdir(path) else None


# ---------------------------------------------------------------- layers


def open_layers(paths: Sequence[str], names: Sequence[str] = ()) -> list[Layer]:
    """Check every path is a local layer and name it; raise UserError otherwise."""
    if not paths:
        raise UserError("give at least one layer path to view")
    if names and len(names) != len(paths):
        raise UserError(f"--name was given {len(names)} times for {len(paths)} paths; "
                        "give it once per path, in the same order, or not at all")
    layers: list[Layer] = []
    taken: set[str] = set()
    mounts: set[str] = set()
    for i, path in enumerate(paths):
        cloudpath = normalize_path(path)
        if not cloudpath.startswith("file://"):
            raise UserError(f"igneous view serves local layers only, not {cloudpath}; "
                            "copy it with `igneous image xfer` or give a directory")
        directory = cloudpath[len("file://"):]
        if not os.path.isdir(directory):
            raise UserError(f"no layer at {cloudpath} (not a directory); check the path")
        info = LayerInfo(cloudpath).info
        scale = info["scales"][0]
        if not isinstance(scale, dict) or "size" not in scale or "resolution" not in scale:
            raise UserError(f"malformed info file at {cloudpath}: scale 0 needs size and resolution")
        name = _unique(names[i] if names else os.path.basename(directory.rstrip("/")) or "layer",
                       taken)
        mount = _unique(re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "layer", mounts)
        layers.append(Layer(name=name, directory=directory, info=info, mount=mount))
    for layer in layers:
        if layer.kind == "segmentation":
            layer.segments = pick_segments(layer)
    return layers


def _unique(name: str, taken: set[str]) -> str:
    base, n = name, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def pick_segments(layer: Layer, limit: int = MAX_SEGMENTS) -> list[int]:
    """The ``limit`` largest objects (by stored bytes) having every 3D view present.

    Selecting an object whose mesh or skeleton is missing makes Neuroglancer
    wait forever for it, so only objects found in each source are picked.
    """
    sizes: dict[int, int] = {}
    found: list[set[int]] = []
    for key in ("mesh", "skeletons"):
        directory = layer.subdirectory(key)
        if directory is None:
            continue
        stored = stored_objects(layer.directory, os.path.relpath(directory, layer.directory), key)
        found.append(set(stored))
        for label, size in stored.items():
            sizes[label] = sizes.get(label, 0) + size
    if not found:
        return []
    common = set.intersection(*found)
    return sorted(common, key=lambda label: (-sizes[label], label))[:limit]


def stored_objects(layer_dir: str, subdir: str, kind: str) -> dict[int, int]:
    """{object id: bytes} for the meshes or skeletons stored in ``layer_dir/subdir``."""
    directory = os.path.join(layer_dir, subdir)
    spec = _read_json(os.path.join(directory, "info")) or {}
    if spec.get("sharding"):
        return _sharded_objects(layer_dir, subdir, spec["sharding"])
    # unsharded legacy meshes: ID:0 (manifest) + ID:0:* (fragments); multi-resolution
    # meshes: ID.index (manifest) + ID; skeletons: ID
    if kind != "mesh":
        pattern, manifest = re.compile(r"^(\d+)()$"), ""
    elif spec.get("@type") == "neuroglancer_multilod_draco":
        pattern, manifest = re.compile(r"^(\d+)(\.index)?$"), ".index"
    else:
        pattern, manifest = re.compile(r"^(\d+)(:.*)?$"), ":0"
    sizes: dict[int, int] = {}
    manifests: set[int] = set()
    for entry in os.scandir(directory):
        match = pattern.match(_strip_compression(entry.name))
        if not match or not entry.is_file():
            continue
        label = int(match.group(1))
        sizes[label] = sizes.get(label, 0) + entry.stat().st_size
        if match.group(2) == manifest:
            manifests.add(label)
    return {label: sizes[label] for label in manifests}


def _sharded_objects(layer_dir: str, subdir: str, sharding: dict) -> dict[int, int]:
    """{object id: bytes} from the indices of every shard file in ``layer_dir/subdir``."""
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, ShardReader

    from igneous.layers import open_layer

    cv = open_layer("file://" + layer_dir)
    reader = ShardReader(cv.cloudpath, cv.cache, ShardingSpecification.from_dict(sharding))
    sizes: dict[int, int] = {}
    for entry in os.scandir(os.path.join(layer_dir, subdir)):
        if entry.name.endswith(".shard"):
            for label, size in reader.list_labels(entry.name, path=subdir, size=True):
                sizes[int(label)] = int(size)
    return sizes


def info_for_neuroglancer(layer: Layer, key: str) -> bytes | None:
    """The mesh or skeleton info as Neuroglancer can take it, or None if it needs no change.

    Served instead of the file (which stays unchanged) in three cases:
    - a legacy mesh directory without an info file gets the default info
      Neuroglancer would assume anyway, so the log shows no spurious 404;
    - ``"sharding": null`` (CloudVolume's in-memory default) is dropped:
      Neuroglancer rejects the whole source when ``sharding`` is not an object;
    - skeleton vertex attributes Neuroglancer cannot draw are dropped. It takes
      only float32 ones and refuses the source otherwise, while CloudVolume's
      default skeleton info ends with a uint8 ``vertex_types``. Attributes are
      stored one after another and Neuroglancer reads only those listed, so
      dropping the trailing unusable ones is safe.
    """
    directory = layer.subdirectory(key)
    if directory is None:
        return None
    if _find_file(os.path.join(directory, "info")) is None:
        return json.dumps(LEGACY_MESH_INFO).encode() if key == "mesh" else None
    info = _read_json(os.path.join(directory, "info"))
    if not isinstance(info, dict):
        return None
    fixed = {k: v for k, v in info.items() if not (k == "sharding" and v is None)}
    attributes = info.get("vertex_attributes")
    if key == "skeletons" and isinstance(attributes, list):
        usable = 0
        while usable < len(attributes) and isinstance(attributes[usable], dict) \
                and attributes[usable].get("data_type") == "float32":
            usable += 1
        fixed["vertex_attributes"] = attributes[:usable]
    return None if fixed == info else json.dumps(fixed).encode()


def info_overrides(layers: Sequence[Layer]) -> dict[str, bytes]:
    """{URL path: body} for the mesh/skeleton info files Neuroglancer needs changed."""
    out: dict[str, bytes] = {}
    for layer in layers:
        for key in ("mesh", "skeletons"):
            fixed = info_for_neuroglancer(layer, key)
            if fixed is not None:
                out[_url_path(layer, layer.subdirectory(key), "info")] = fixed
    return out


def _url_path(layer: Layer, directory: str, name: str) -> str:
    rel = os.path.relpath(os.path.join(directory, name), layer.directory).replace(os.sep, "/")
    return posixpath.normpath(f"/{layer.mount}/{rel}")


def _strip_compression(name: str) -> str:
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- file server


class LayerServer(ThreadingHTTPServer):
    """Serves layer directories at ``/NAME/`` on 127.0.0.1 and logs every request."""

    daemon_threads = True

    def __init__(self, mounts: dict[str, str], port: int = 0,
                 on_request: Callable[[Request], None] | None = None,
                 overrides: dict[str, bytes] | None = None):
        self.mounts = dict(mounts)
        self.overrides = dict(overrides or {})  # URL path -> body served instead of the file
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

    def locate(self, url_path: str) -> str | None:
        """The file path under a mount for a URL path, or None (outside every mount)."""
        parts = urllib.parse.unquote(url_path).lstrip("/").split("/", 1)
        root = self.mounts.get(parts[0])
        if root is None:
            return None
        rel = posixpath.normpath(parts[1]) if len(parts) > 1 and parts[1] else "."
        if rel.startswith("..") or posixpath.isabs(rel):
            return None
        return os.path.join(root, rel)


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
        path = self.server.locate(url_path)
        override = self.server.overrides.get(posixpath.normpath(urllib.parse.unquote(url_path)))
        found = _find_file(path) if path else None
        if found is None and override is None:
            self._error(404, "not found")
            return
        filename, encoding = found or ("", None)
        range_header = self.headers.get("Range")
        headers = {"Content-Type": _content_type(url_path)}
        # whole bytes in memory, except plain files: those are read only where asked
        # (shard files can be large and are read in small ranges)
        blob: bytes | None = None
        if override is not None:
            blob = override
        elif encoding == "gzip" and not range_header \
                and "gzip" in self.headers.get("Accept-Encoding", ""):
            blob = _read(filename)
            headers["Content-Encoding"] = "gzip"
        elif encoding is not None:
            blob = _decode(_read(filename), encoding)
        size = len(blob) if blob is not None else os.path.getsize(filename)
        status, span = 200, (0, size)
        if range_header:
            span = _byte_range(range_header, size)
            if span is None:
                self._error(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
                return
            if span != (0, size):
                status = 206
                headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{size}"
        headers["Accept-Ranges"] = "bytes"
        data = b""
        if body:
            data = blob[span[0]:span[1]] if blob is not None else _read(filename, *span)
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


def _find_file(path: str) -> tuple[str, str | None] | None:
    """(file on disk, stored compression) for a requested path, or None."""
    if os.path.isfile(path):
        return path, None
    for suffix, encoding in ((".gz", "gzip"), (".br", "br"), (".zstd", "zstd")):
        if os.path.isfile(path + suffix):
            return path + suffix, encoding
    return None


def _read(path: str, start: int = 0, stop: int | None = None) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read() if stop is None else f.read(stop - start)


def _decode(data: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "br":
        import brotli

        return brotli.decompress(data)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _content_type(path: str) -> str:
    return "application/json" if os.path.basename(path) == "info" else "application/octet-stream"


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single ``bytes=`` range; the whole file for forms we don't serve."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or match.group(1) == match.group(2) == "":
        return 0, size  # multiple ranges or garbage: answer with the whole file (allowed)
    first, last = match.groups()
    if first == "":
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        stop = size if last == "" else min(size, int(last) + 1)
    if start >= size or start >= stop:
        return None
    return start, stop


# ---------------------------------------------------------------- Neuroglancer


def build_state(layers: Sequence[Layer], base_url: str, pos: Sequence[float] | None = None):
    """A neuroglancer.ViewerState showing ``layers`` served under ``base_url``."""
    import neuroglancer

    first = layers[0]
    state = neuroglancer.ViewerState()
    state.dimensions = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm",
                                                    scales=first.resolution)
    if pos is not None:
        # voxel i spans [i, i + 1): +0.5 puts a given voxel in the middle of the view
        state.position = [p + 0.5 for p in pos]
    else:  # the whole first layer: its largest side spans ~FIT_PIXELS screen pixels
        state.position = first.center
        scale = first.info["scales"][0]
        extent = max(n * r for n, r in zip(scale["size"], scale["resolution"])) \
            / min(scale["resolution"])
        state.cross_section_scale = extent / FIT_PIXELS
        state.projection_scale = extent * 1.5
    three_d = False
    for layer in layers:
        source = layer_source(layer, base_url)
        if layer.kind == "segmentation":
            state.layers[layer.name] = neuroglancer.SegmentationLayer(source=source,
                                                                      segments=layer.segments)
            three_d = three_d or bool(layer.segments)
        else:
            state.layers[layer.name] = neuroglancer.ImageLayer(source=source)
    state.layout = "4panel" if three_d else "xy"
    return state


def layer_source(layer: Layer, base_url: str) -> str | list[str]:
    """Neuroglancer data source(s) of a served layer: precomputed, or an
    OME-Zarr (``zarr2://`` / ``zarr3://``) plus the Precomputed mesh and
    skeleton directories written beside it (a zarr source has none of its own)."""
    url = f"{base_url}/{layer.mount}"
    zarr = layer.info.get("zarr")
    if zarr is None:
        return f"precomputed://{url}"
    sources = [f"zarr{int(zarr['version'])}://{url}"]
    for key in ("mesh", "skeletons"):
        directory = layer.subdirectory(key)
        if directory is not None:
            sources.append(f"precomputed://{base_url}{_url_path(layer, directory, '')}")
    return sources


class LayerView:
    """Running servers for one ``view`` call; ``stop()`` ends them (also a context manager)."""

    def __init__(self, layers: list[Layer], files: LayerServer, url: str, viewer: Any = None):
        self.layers = layers
        self.files = files
        self.url = url
        self.viewer = viewer

    @property
    def requests(self) -> list[Request]:
        return list(self.files.requests)

    def stop(self) -> None:
        self.files.stop()
        if self.viewer is not None:
            import neuroglancer

            neuroglancer.stop()
            self.viewer = None

    def __enter__(self) -> LayerView:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def view(paths: str | Sequence[str], *, port: int = DEFAULT_PORT, names: Sequence[str] = (),
         pos: Sequence[float] | None = None, ng: str | None = None, browser: bool = False,
         on_request: Callable[[Request], None] | None = None) -> LayerView:
    """Serve local layers and open them in Neuroglancer; returns the running LayerView.

    ``port`` is the file server's (the next free one is taken if busy; 0 = any).
    Without ``ng`` the Neuroglancer client bundled with the ``neuroglancer``
    package is served from another free port and ``.viewer`` is its
    ``neuroglancer.Viewer``; with ``ng`` the URL points at that page instead.
    Call ``.stop()`` (or use ``with``) to shut everything down.
    """
    if isinstance(paths, str):
        paths = [paths]
    layers = open_layers(paths, names)
    if pos is not None and len(pos) != 3:
        raise UserError(f"--pos needs three numbers x,y,z, not {pos!r}")
    try:
        import neuroglancer
    except ImportError:
        raise UserError("igneous view needs the neuroglancer package: "
                        "pip install 'igneous[view]'") from None
    files = bind_server({layer.mount: layer.directory for layer in layers}, port, on_request,
                        info_overrides(layers))
    files.start()
    try:
        state = build_state(layers, files.url, pos)
        viewer = None
        if ng:
            url = neuroglancer.to_url(state, prefix=ng)
        else:
            neuroglancer.set_server_bind_address(HOST, 0)
            viewer = neuroglancer.Viewer()
            viewer.set_state(state)
            url = viewer.get_viewer_url()
    except BaseException:
        files.stop()
        raise
    if browser:
        webbrowser.open(url)
    return LayerView(layers, files, url, viewer)
