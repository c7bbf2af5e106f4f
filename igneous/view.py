"""``igneous view``: look at local layers in Neuroglancer, with no internet.

Two servers run on 127.0.0.1 in this process:

- the file server (igneous.fileserver), publishing each layer under
  ``/NAME/`` through the storage contract, with CORS, stored-compression
  mapping and byte ranges, logging every request;
- the Neuroglancer client bundled in the ``neuroglancer`` Python package,
  served by that package's own server, holding a viewer state that shows each
  layer (image or segmentation per its info; for segmentations the largest
  objects that have meshes or skeletons are selected so they render).

This module builds that state (which layers, which objects, which info files
Neuroglancer needs changed); ``--ng URL`` instead prints a link to another
Neuroglancer page carrying the same state in its URL (that page must be
reachable from the browser).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from igneous.errors import UserError
from igneous.fileserver import DEFAULT_PORT, HOST, LayerServer, Request, bind_server
from igneous.layers import LayerInfo, normalize_path
from igneous.storage import Store, open_store

__all__ = ["DEFAULT_PORT", "Layer", "LayerServer", "LayerView", "Request", "build_state",
           "info_for_neuroglancer", "info_overrides", "open_layers", "pick_segments", "view"]

MAX_SEGMENTS = 16  # objects selected per segmentation layer: enough to see, quick to draw
LEGACY_MESH_INFO = {"@type": "neuroglancer_legacy_mesh"}
FIT_PIXELS = 300  # without --pos, the first layer's largest side is drawn this many pixels long


@dataclass
class Layer:
    """A local layer to show: where it is and what Neuroglancer gets."""

    name: str
    directory: str
    info: dict
    mount: str = ""  # URL path segment the file server publishes the layer under
    segments: list[int] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return open_store(self.directory)

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
        """The mesh or skeleton directory the info names (relative to the
        layer), if anything is stored there."""
        value = self.info.get(key)
        if not isinstance(value, str) or not value:
            return None
        sub = posixpath.normpath(value.strip("/"))
        if sub in (".", "") or sub.startswith(".."):
            return None
        return sub if next(iter(self.store.list(sub + "/")), None) is not None else None


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
        sub = layer.subdirectory(key)
        if sub is None:
            continue
        stored = stored_objects(layer, sub, key)
        found.append(set(stored))
        for label, size in stored.items():
            sizes[label] = sizes.get(label, 0) + size
    if not found:
        return []
    common = set.intersection(*found)
    return sorted(common, key=lambda label: (-sizes[label], label))[:limit]


def stored_objects(layer: Layer, sub: str, kind: str) -> dict[int, int]:
    """{object id: bytes} for the meshes or skeletons stored in ``sub`` of ``layer``."""
    store = layer.store.child(sub)
    spec = _json(store, "info") or {}
    if spec.get("sharding"):
        return _sharded_objects(layer, store, sub, spec["sharding"])
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
    for name in store.list(flat=True):
        match = pattern.match(name)
        if not match:
            continue
        label = int(match.group(1))
        sizes[label] = sizes.get(label, 0) + (store.size(name) or 0)
        if match.group(2) == manifest:
            manifests.add(label)
    return {label: sizes[label] for label in manifests}


def _sharded_objects(layer: Layer, store: Store, sub: str, sharding: dict) -> dict[int, int]:
    """{object id: bytes} from the indices of every shard file in ``sub``."""
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, ShardReader

    from igneous.layers import open_layer

    cv = open_layer("file://" + layer.directory)
    reader = ShardReader(cv.cloudpath, cv.cache, ShardingSpecification.from_dict(sharding))
    sizes: dict[int, int] = {}
    for name in store.list(flat=True):
        if name.endswith(".shard"):
            for label, size in reader.list_labels(name, path=sub, size=True):
                sizes[int(label)] = int(size)
    return sizes


def info_for_neuroglancer(layer: Layer, key: str) -> bytes | None:
    """The mesh or skeleton info as Neuroglancer can take it, or None if it needs no change.

    Served instead of the stored object (which stays unchanged) in three cases:
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
    sub = layer.subdirectory(key)
    if sub is None:
        return None
    store = layer.store
    if not store.exists(f"{sub}/info"):
        return json.dumps(LEGACY_MESH_INFO).encode() if key == "mesh" else None
    info = _json(store, f"{sub}/info")
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
            sub = layer.subdirectory(key)
            if fixed is not None and sub is not None:
                out[posixpath.normpath(f"/{layer.mount}/{sub}/info")] = fixed
    return out


def _json(store: Store, key: str) -> Any:
    """The parsed JSON of ``key``, or None if it is missing or not JSON."""
    try:
        return store.get_json(key)
    except (OSError, ValueError, UserError):
        return None


# ---------------------------------------------------------------- Neuroglancer


def build_state(layers: Sequence[Layer], base_url: str, pos: Sequence[float] | None = None) -> Any:
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
        sub = layer.subdirectory(key)
        if sub is not None:
            sources.append(f"precomputed://{url}/{sub}")
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
