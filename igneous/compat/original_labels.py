"""The original Igneous's segmentation task classes (CCL, meshing), translated
onto our task functions (skeletons: igneous.compat.skeletons). See
igneous.compat.base for the rules."""

from __future__ import annotations

from typing import Any

import numpy as np

from igneous.compat.base import REQUIRED, OriginalTask, triple
from igneous.errors import UserError
from igneous.tasks import Task

CCL_PARAMS = {
    "cloudpath": REQUIRED, "mip": REQUIRED, "shape": REQUIRED, "offset": REQUIRED,
    "threshold_gte": None, "threshold_lte": None, "fill_missing": False, "dust_threshold": 0,
}


class CCLTask(OriginalTask):
    """Shared by the three CCL steps: the original names a block by its offset,
    ours by its grid index; the first step records the run's parameters the way
    our planner does (``create_ccl_face_tasks``), so our later steps accept it."""

    step = "faces"
    path_key = "cloudpath"

    def grid(self) -> tuple[str, dict, int, dict[str, Any]]:
        from igneous.grid import as_list, scale_bounds, vec
        from igneous.layers import LayerInfo
        from igneous.tasks.ccl import load_params, save_params

        path = LayerInfo(self.arg(self.path_key)).cloudpath
        info = LayerInfo(path).info
        mip = int(self.arg("mip"))
        start, stop = scale_bounds(info, mip)
        shape = vec(triple(self.arg("shape"), "shape"))
        offset = vec(triple(self.arg("offset"), "offset"))
        if np.any(shape <= 0) or np.any((offset - start) % shape):
            raise UserError(f"{type(self).__name__}: offset {as_list(offset)} is not on the "
                            f"grid of shape {as_list(shape)} from {as_list(start)}")
        params = load_params(path, info, mip)
        want = dict(mip=mip, shape=as_list(shape), bounds=[as_list(start), as_list(stop)],
                    threshold_gte=self.arg("threshold_gte"), threshold_lte=self.arg("threshold_lte"),
                    dust_threshold=int(self.arg("dust_threshold") or 0), data_type=info["data_type"])
        if params is None:
            params = dict(want, steps=[])
        differ = [k for k in want if params.get(k) != want[k]]
        if differ:
            raise UserError(f"{type(self).__name__}: this CCL run of {path} mip {mip} was recorded "
                            f"with other {', '.join(differ)}; clean it first (igneous image ccl clean)")
        if self.step not in params["steps"]:
            params["steps"] = [*params["steps"], self.step]
            save_params(path, info, mip, params)
        block = dict(start=as_list(start), stop=as_list(stop), shape=as_list(shape),
                     index=as_list((offset - start) // shape))
        return path, info, mip, block


class CCLFacesTask(CCLTask):
    params = CCL_PARAMS

    def task(self) -> Task:
        path, _, mip, block = self.grid()
        from igneous.tasks.ccl import ccl_faces

        return Task.of(ccl_faces, dict(
            block, cloudpath=path, mip=mip, threshold_gte=self.arg("threshold_gte"),
            threshold_lte=self.arg("threshold_lte"), fill_missing=bool(self.arg("fill_missing")),
            dust_threshold=int(self.arg("dust_threshold") or 0)))


class CCLEquivalancesTask(CCLTask):
    params = CCL_PARAMS
    step = "links"

    def task(self) -> Task:
        path, _, mip, block = self.grid()
        from igneous.tasks.ccl import ccl_links

        return Task.of(ccl_links, dict(block, cloudpath=path, mip=mip))


class RelabelCCLTask(CCLTask):
    params = {"src_path": REQUIRED, "dest_path": REQUIRED, **{
        k: v for k, v in CCL_PARAMS.items() if k != "cloudpath"}}
    step = "relabel"
    path_key = "src_path"

    def task(self) -> Task:
        path, _, mip, block = self.grid()
        from igneous.tasks.ccl import ccl_relabel

        return Task.of(ccl_relabel, dict(
            block, src_path=path, dest_path=self.arg("dest_path"), mip=mip,
            threshold_gte=self.arg("threshold_gte"), threshold_lte=self.arg("threshold_lte"),
            fill_missing=bool(self.arg("fill_missing"))))


GRAPHENE_ONLY = "graphene (ChunkedGraph) sources are not supported"


class MeshTask(OriginalTask):
    params = {
        "shape": REQUIRED, "offset": REQUIRED, "layer_path": REQUIRED,
        "cache_control": None, "draco_compression_level": 1, "draco_create_metadata": False,
        "dust_threshold": None, "dust_global": False, "encoding": "precomputed",
        "fill_missing": False, "generate_manifests": False, "high_padding": 1, "low_padding": 0,
        "lod": 0, "max_simplification_error": 40, "simplification_factor": 100, "mesh_dir": None,
        "frag_path": None, "mip": 0, "object_ids": None, "exclude_object_ids": [],
        "parallel_download": 1, "progress": False, "remap_table": None, "spatial_index": False,
        "sharded": False, "timestamp": None, "agglomerate": True, "stop_layer": 2,
        "compress": "gzip", "closed_dataset_edges": True, "fill_holes": 0, "dry_run": False,
    }
    unsupported = {
        "draco_create_metadata": "not supported", "generate_manifests":
        "run MeshManifestPrefixTask (or igneous mesh merge) after forging",
        "high_padding": "tasks overlap by exactly one voxel", "low_padding":
        "tasks overlap by exactly one voxel", "lod": "levels of detail come from the merge step "
        "(igneous mesh merge --nlod)", "frag_path": "fragments are written beside the meshes",
        "remap_table": "remap the segmentation first (igneous image remap)",
        "timestamp": GRAPHENE_ONLY, "dry_run": "not supported",
    }
    # accepted without effect: agglomerate / stop_layer (graphene sources only),
    # parallel_download / progress (the original's download and logging),
    # draco_compression_level (our sharded forge picks its own encoding)

    def task(self) -> Task:
        from igneous.layers import LayerInfo

        encoding = self.arg("encoding")
        if encoding not in ("precomputed", "draco"):
            raise UserError(f"MeshTask: encoding {encoding!r} is not one of precomputed, draco")
        if encoding == "draco" and not self.arg("sharded"):
            raise UserError("MeshTask: encoding='draco' is supported for sharded forging only")
        layer = LayerInfo(self.arg("layer_path"))
        mip = int(self.arg("mip"))
        err = self.arg("max_simplification_error")
        sub = (self.arg("mesh_dir") or layer.info.get("mesh") or f"mesh_mip_{mip}_err_{int(err)}")
        lo = np.asarray(triple(self.arg("offset"), "offset"), dtype=np.int64)
        hi = lo + np.asarray(triple(self.arg("shape"), "shape"), dtype=np.int64)
        ids = self.arg("object_ids")
        exclude = self.arg("exclude_object_ids")
        dust = self.arg("dust_threshold")
        from igneous.tasks.mesh import mesh_forge

        return Task.of(mesh_forge, {
            "layer_path": layer.cloudpath, "mip": mip, "lo": lo.tolist(), "hi": hi.tolist(),
            "mesh_dir": sub.strip("/"),
            "simplification_factor": int(self.arg("simplification_factor") or 0),
            "max_simplification_error": float(err),
            "dust_threshold": int(dust) if dust else None,
            "object_ids": [int(x) for x in ids] if ids else None,
            "exclude_object_ids": [int(x) for x in exclude] if exclude else None,
            "fill_missing": bool(self.arg("fill_missing")),
            "spatial_index": bool(self.arg("spatial_index") or self.arg("sharded")),
            "sharded": bool(self.arg("sharded")),
            "closed_dataset_edges": bool(self.arg("closed_dataset_edges")),
            "compress": self.arg("compress"), "fill_holes": int(self.arg("fill_holes") or 0),
            "dust_global": bool(self.arg("dust_global")),
            "cache_control": self.arg("cache_control") or None,
        })


class MeshManifestPrefixTask(OriginalTask):
    params = {"layer_path": REQUIRED, "prefix": REQUIRED, "lod": 0, "mesh_dir": None}
    unsupported = {"lod": "legacy manifests are level 0; use igneous mesh merge --nlod"}

    def task(self) -> Task:
        from igneous.layers import LayerInfo

        layer = LayerInfo(self.arg("layer_path"))
        sub = self.arg("mesh_dir") or layer.info.get("mesh")
        if not sub:
            raise UserError(f"{type(self).__name__}: {layer.cloudpath} names no mesh directory "
                            "(its info has no 'mesh'); pass mesh_dir=")
        from igneous.tasks.mesh_merge import mesh_manifest

        return Task.of(mesh_manifest, {"layer_path": layer.cloudpath, "mesh_dir": sub.strip("/"),
                                      "prefix": str(self.arg("prefix")), "exact": False})


class MeshManifestTask(MeshManifestPrefixTask):
    """The spec's name for the prefix manifest task."""


class MeshManifestFilesystemTask(MeshManifestPrefixTask):
    params = {"layer_path": REQUIRED, "lod": 0, "mesh_dir": None}

    def arg(self, key: str) -> Any:
        return "" if key == "prefix" else super().arg(key)
