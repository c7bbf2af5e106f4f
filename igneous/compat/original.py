"""The original Igneous's image task classes, translated onto our task functions.

Keywords and defaults are the original's (its signatures are the interface);
each class's ``task()`` builds the Task of ours that does the same work. Box
arguments are the original's: ``offset`` + ``shape`` in voxels of ``mip``,
clipped to the layer's bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from igneous.compat.base import REQUIRED, OriginalTask, triple
from igneous.errors import UserError
from igneous.tasks import Task

# the original's DownsampleMethods enum (igneous.types) -> our method names
METHOD_NAMES = {1: "avg", 2: "mode", 3: "min", 4: "max", 5: "striding", 6: "auto"}
NOT_SUPPORTED_GRAPHENE = "graphene (agglomerate/timestamp) sources are not supported"


def method_name(method: Any, layer_type: str) -> str:
    """The original's method (its enum, an int, or a name) as ours, 'auto' resolved."""
    from igneous.tasks.pyramid import resolve_method

    value = getattr(method, "value", method)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if int(value) not in METHOD_NAMES:
            raise UserError(f"unknown downsample method {value!r} (the original's are 1-6)")
        value = METHOD_NAMES[int(value)]
    aliases = {"average": "avg", "average_pooling": "avg", "mode_pooling": "mode"}
    value = aliases.get(str(value).lower(), str(value).lower())
    return resolve_method(value, layer_type)


def clipped_box(info: dict, mip: int, offset: Any, shape: Any) -> tuple[np.ndarray, np.ndarray]:
    """The task box ``[offset, offset + shape)`` clipped to the scale (lo, size)."""
    from igneous.grid import clip, scale_bounds, vec

    if mip < 0 or mip >= len(info["scales"]):
        raise UserError(f"mip {mip} does not exist (the layer has {len(info['scales'])} scales)")
    start, stop = scale_bounds(info, mip)
    lo = vec(triple(offset, "offset"))
    lo, hi = clip(lo, lo + vec(triple(shape, "shape")), start, stop)
    return lo, np.maximum(hi - lo, 0)


def pyramid_depth(info: dict, mip: int, shape: Any, factor: Any, max_mips: int | None) -> tuple[int, list[int]]:
    """How many mips above ``mip`` one task makes (the original: as many as the
    info has and the task shape divides into, up to ``max_mips``), and the factor."""
    from igneous.grid import mip_factor

    top = len(info["scales"]) - 1 - mip
    if factor is None:
        factor = mip_factor(info, mip, mip + 1) if top > 0 else (2, 2, 1)
    f = np.asarray(triple(factor, "factor"), dtype=np.int64)
    if np.any(f < 1):
        raise UserError(f"factor must be positive, got {list(f)}")
    size = np.asarray(triple(shape, "shape"), dtype=np.int64)
    depth = 0
    while depth < top and np.all(size % f == 0) and np.any(f > 1):
        size //= f
        depth += 1
    if max_mips is not None:
        depth = min(depth, int(max_mips))
    return depth, [int(x) for x in f]


def layer_info(path: str) -> dict:
    from igneous.layers import LayerInfo

    return LayerInfo(path).info


class DownsampleTask(OriginalTask):
    params = {
        "layer_path": REQUIRED, "mip": REQUIRED, "shape": REQUIRED, "offset": REQUIRED,
        "fill_missing": False, "axis": "z", "sparse": False, "delete_black_uploads": False,
        "background_color": 0, "dest_path": None, "compress": "gzip", "factor": None,
        "max_mips": None, "method": 6, "codec_threads": 1,
    }
    unsupported = {"axis": "choose the pooled axes with factor instead"}
    # codec_threads only tunes the original's decoding: accepted, no effect

    def task(self) -> Task:
        src = self.arg("layer_path")
        info = layer_info(src)
        mip = int(self.arg("mip"))
        lo, size = clipped_box(info, mip, self.arg("offset"), self.arg("shape"))
        depth, factor = pyramid_depth(info, mip, self.arg("shape"), self.arg("factor"),
                                      self.arg("max_mips"))
        from igneous.tasks.downsample import downsample

        return Task.of(downsample, {
            "layer_path": src, "mip": mip, "offset": lo.tolist(), "shape": size.tolist(),
            "num_mips": depth, "factor": factor,
            "method": method_name(self.arg("method"), info.get("type", "image")),
            "sparse": bool(self.arg("sparse")), "fill_missing": bool(self.arg("fill_missing")),
            "delete_black_uploads": bool(self.arg("delete_black_uploads")),
            "background_color": int(self.arg("background_color")),
            "compress": self.arg("compress"), "dest_path": self.arg("dest_path"),
        })


class TransferTask(OriginalTask):
    params = {
        "src_path": REQUIRED, "dest_path": REQUIRED, "mip": REQUIRED, "shape": REQUIRED,
        "offset": REQUIRED, "translate": (0, 0, 0), "fill_missing": False, "skip_first": False,
        "skip_downsamples": False, "delete_black_uploads": False, "background_color": 0,
        "sparse": False, "axis": "z", "agglomerate": False, "timestamp": None,
        "compress": "gzip", "factor": None, "max_mips": None, "stop_layer": None,
        "downsample_method": 6, "use_https_for_source": False, "codec_threads": 1,
    }
    unsupported = {
        "axis": "choose the pooled axes with factor instead",
        "skip_first": "a transfer always writes its first mip here",
        "stop_layer": NOT_SUPPORTED_GRAPHENE,
        "use_https_for_source": "give the source as an https:// path instead",
    }
    # codec_threads only tunes the original's decoding: accepted, no effect

    def task(self) -> Task:
        # the original's box is in source voxels, written at box + translate;
        # ours is in destination voxels
        dest = self.arg("dest_path")
        info = layer_info(dest)
        mip = int(self.arg("mip"))
        translate = triple(self.arg("translate"), "translate")
        lo, size = clipped_box(layer_info(self.arg("src_path")), mip, self.arg("offset"),
                               self.arg("shape"))
        depth, factor = (0, [2, 2, 1])
        if not self.arg("skip_downsamples"):
            depth, factor = pyramid_depth(info, mip, self.arg("shape"), self.arg("factor"),
                                          self.arg("max_mips"))
        from igneous.tasks.transfer import transfer

        return Task.of(transfer, {
            "src_path": self.arg("src_path"), "dest_path": dest, "mip": mip,
            "offset": (lo + translate).tolist(), "shape": size.tolist(),
            "translate": translate, "num_mips": depth,
            "factor": factor,
            "method": method_name(self.arg("downsample_method"), info.get("type", "image")),
            "sparse": bool(self.arg("sparse")), "fill_missing": bool(self.arg("fill_missing")),
            "delete_black_uploads": bool(self.arg("delete_black_uploads")),
            "background_color": int(self.arg("background_color")),
            "compress": self.arg("compress"), "agglomerate": bool(self.arg("agglomerate")),
            "timestamp": self.arg("timestamp"),
        })


class DeleteTask(OriginalTask):
    params = {"layer_path": REQUIRED, "shape": REQUIRED, "offset": REQUIRED, "mip": 0,
              "num_mips": 5}

    def task(self) -> Task:
        mip = int(self.arg("mip"))
        lo, size = clipped_box(layer_info(self.arg("layer_path")), mip, self.arg("offset"),
                               self.arg("shape"))
        from igneous.tasks.delete import delete

        return Task.of(delete, {
            "layer_path": self.arg("layer_path"), "mip": mip, "offset": lo.tolist(),
            "shape": size.tolist(), "num_mips": int(self.arg("num_mips")),
        })


class QuantizeTask(OriginalTask):
    params = {"source_layer_path": REQUIRED, "dest_layer_path": REQUIRED, "shape": REQUIRED,
              "offset": REQUIRED, "mip": REQUIRED, "fill_missing": False}

    def task(self) -> Task:
        info = layer_info(self.arg("source_layer_path"))
        mip = int(self.arg("mip"))
        lo, size = clipped_box(info, mip, self.arg("offset"), self.arg("shape"))
        from igneous.tasks.quantize import quantize

        return Task.of(quantize, {
            "src_path": self.arg("source_layer_path"), "dest_path": self.arg("dest_layer_path"),
            "mip": mip, "offset": lo.tolist(), "shape": size.tolist(), "channel": 0,
            "value_range": [0.0, 1.0], "fill_missing": bool(self.arg("fill_missing")),
        })


class CountVoxelsTask(OriginalTask):
    params = {"cloudpath": REQUIRED, "shape": REQUIRED, "offset": REQUIRED, "mip": 0,
              "fill_missing": False, "agglomerate": False, "timestamp": None}

    def task(self) -> Task:
        from igneous.tasks.voxels import count_voxels

        return Task.of(count_voxels, {
            "cloudpath": self.arg("cloudpath"), "mip": int(self.arg("mip")),
            "offset": triple(self.arg("offset"), "offset"),
            "shape": triple(self.arg("shape"), "shape"),
            "fill_missing": bool(self.arg("fill_missing")),
            "agglomerate": bool(self.arg("agglomerate")), "timestamp": self.arg("timestamp"),
        })


class LuminanceLevelsTask(OriginalTask):
    params = {"src_path": REQUIRED, "levels_path": REQUIRED, "shape": REQUIRED,
              "offset": REQUIRED, "coverage_factor": REQUIRED, "mip": REQUIRED}

    def task(self) -> Task:
        info = layer_info(self.arg("src_path"))
        mip = int(self.arg("mip"))
        lo, size = clipped_box(info, mip, self.arg("offset"), self.arg("shape"))
        from igneous.grid import chunk_size

        column = chunk_size(info, mip).tolist()
        column[2] = int(size[2])
        from igneous.tasks.contrast import luminance_levels

        return Task.of(luminance_levels, {
            "layer_path": self.arg("src_path"), "levels_path": self.arg("levels_path") or
            self.arg("src_path"), "mip": mip, "offset": lo.tolist(), "shape": size.tolist(),
            "coverage": float(self.arg("coverage_factor")), "column": column,
        })


class ContrastNormalizationTask(OriginalTask):
    params = {"src_path": REQUIRED, "dest_path": REQUIRED, "levels_path": REQUIRED,
              "shape": REQUIRED, "offset": REQUIRED, "mip": REQUIRED, "clip_fraction": REQUIRED,
              "fill_missing": REQUIRED, "translate": REQUIRED, "minval": REQUIRED,
              "maxval": REQUIRED}

    def task(self) -> Task:
        mip = int(self.arg("mip"))
        translate = triple(self.arg("translate") or (0, 0, 0), "translate")
        lo, size = clipped_box(layer_info(self.arg("src_path")), mip, self.arg("offset"),
                               self.arg("shape"))
        from igneous.tasks.contrast import contrast_normalize

        return Task.of(contrast_normalize, {  # ours: the box in destination voxels
            "src_path": self.arg("src_path"), "dest_path": self.arg("dest_path"),
            "levels_path": self.arg("levels_path") or self.arg("src_path"),
            "mip": mip, "offset": (lo + translate).tolist(), "shape": size.tolist(),
            "clip_fraction": float(self.arg("clip_fraction")), "translate": translate,
            "minval": self.arg("minval"), "maxval": self.arg("maxval"),
            "fill_missing": bool(self.arg("fill_missing")),
            "clamp_output": True,  # the original's minval / maxval clip its output
        })


class WatershedRemapTask(OriginalTask):
    """``map_path`` holds a .npy array: label ``i`` becomes ``array[i]``
    (labels past its end become 0, as indexing would refuse them)."""

    params = {"map_path": REQUIRED, "src_path": REQUIRED, "dest_path": REQUIRED,
              "shape": REQUIRED, "offset": REQUIRED}

    def task(self) -> Task:
        import hashlib
        import io

        from igneous.storage import open_store

        map_path = self.arg("map_path")
        key = "remap/compat-" + hashlib.sha1(map_path.encode()).hexdigest()[:16] + ".npy"
        dest = open_store(self.arg("dest_path"))
        if not dest.exists(key):  # idempotent: every task writes the same pairs
            where, _, name = map_path.rstrip("/").rpartition("/")
            raw = open_store(where).get(name) if where else None
            if raw is None:
                raise UserError(f"WatershedRemapTask: no remap array at {map_path}")
            table = np.load(io.BytesIO(raw), allow_pickle=False).astype(np.uint64).ravel()
            pairs = np.stack([np.arange(table.size, dtype=np.uint64), table], axis=1)
            buf = io.BytesIO()
            np.save(buf, pairs, allow_pickle=False)
            dest.put(key, buf.getvalue(), compress=None)
        lo, size = clipped_box(layer_info(self.arg("src_path")), 0, self.arg("offset"),
                               self.arg("shape"))
        from igneous.tasks.remap import remap

        return Task.of(remap, {
            "src_path": self.arg("src_path"), "dest_path": self.arg("dest_path"), "mip": 0,
            "offset": lo.tolist(), "shape": size.tolist(), "preserve_missing_labels": False,
            "mapping_key": key,
        })
