"""Planners for whole-volume connected components (see igneous.tasks.ccl).

Each step checks the parameters stored by ``faces`` and the steps already
planned, so a later step with another shape, threshold or dust value, or a
step out of order, is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from igneous import validate
from igneous.errors import UserError
from igneous.grid import Grid, as_list, positive_shape, scale_bounds, vec
from igneous.grid import chunk_size as chunk_of
from igneous.layers import (
    check_encoding,
    normalize_path,
    read_info,
    resolve_mip,
    write_info,
)
from igneous.task_creation.common import (
    DEFAULT_MEMORY_TARGET,
    GridPlan,
    TaskPlan,
    fit_shape,
    index_cell,
)
from igneous.tasks import Task
from igneous.tasks.ccl import (
    Blocks,
    ccl_calc_labels,
    ccl_clean,
    ccl_faces,
    ccl_links,
    ccl_relabel,
    check_params,
    load_params,
    relabel_summary,
    save_params,
)

DEFAULT_SHAPE = (512, 512, 512)
BYTES_PER_VOXEL = 12  # peak per voxel of a faces/relabel task (labels + cc3d), for --memory
ENCODING_ALIASES = {"cseg": "compressed_segmentation"}
CCL_ENCODINGS = ("compresso", "compressed_segmentation", "crackle", "raw")


def _open(cloudpath: str, mip: int) -> tuple[str, dict, int]:
    cloudpath = normalize_path(cloudpath)
    layer = validate.load_layer(cloudpath, mip)
    return cloudpath, layer.info, resolve_mip(layer, mip)


def _validate_first(info: dict, path: str, shape, threshold_gte, threshold_lte, dust_threshold) -> None:
    if info.get("num_channels", 1) != 1:
        raise UserError(f"{path} has {info['num_channels']} channels; CCL needs a single channel")
    thresholded = threshold_gte is not None or threshold_lte is not None
    for name, t in (("--threshold-gte", threshold_gte), ("--threshold-lte", threshold_lte)):
        if t is not None and not np.isfinite(float(t)):
            raise UserError(f"{name} must be a finite number, not {t}")
    if thresholded and info.get("type") == "segmentation":
        raise UserError(
            f"{path} is a segmentation: its labels are compared for equality, so "
            "--threshold-gte/--threshold-lte (which binarize grayscale images) make no sense "
            "here; drop them, or give an image layer")
    if not thresholded and np.dtype(info["data_type"]).kind == "f":
        raise UserError(f"{path} holds {info['data_type']} values: give --threshold-gte and/or "
                        "--threshold-lte to binarize it before labeling")
    if threshold_gte is not None and threshold_lte is not None and threshold_gte > threshold_lte:
        raise UserError(f"--threshold-gte {threshold_gte} > --threshold-lte {threshold_lte} "
                        "selects nothing")
    if dust_threshold is not None and dust_threshold < 0:
        raise UserError(f"--dust must be 0 or more, not {dust_threshold}")
    positive_shape(shape, "--shape")


def _plan(task: Callable[..., Any], blocks: Blocks, description: str, **kwargs) -> TaskPlan:
    common = dict(start=as_list(blocks.start), stop=as_list(blocks.stop),
                  shape=as_list(blocks.shape), **kwargs)

    grid = Grid(blocks.start, blocks.stop, blocks.start, blocks.shape)
    return GridPlan(index_cell, grid, common, description, task=task.__name__,
                    origin=as_list(blocks.start), step=as_list(blocks.shape))


def _record(cloudpath: str, info: dict, mip: int, params: dict, step: str) -> None:
    if step not in params["steps"]:
        params["steps"].append(step)
        save_params(cloudpath, info, mip, params)


def create_ccl_face_tasks(cloudpath: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                          threshold_gte: float | None = None, threshold_lte: float | None = None,
                          fill_missing: bool = False, dust_threshold: int = 0,
                          memory_target: float = DEFAULT_MEMORY_TARGET) -> TaskPlan:
    """Step 1: label each block and store its faces; records the run's parameters
    (the shape, shrunk if a task of it would not fit ``memory_target``)."""
    cloudpath, info, mip = _open(cloudpath, mip)
    if np.all(vec(shape) > 0):
        shape = fit_shape(shape, memory_target, BYTES_PER_VOXEL, what="ccl",
                          limit=info["scales"][mip]["size"])
    _validate_first(info, cloudpath, shape, threshold_gte, threshold_lte, dust_threshold)
    start, stop = scale_bounds(info, mip)
    params = dict(mip=mip, shape=as_list(vec(shape)), bounds=[as_list(start), as_list(stop)],
                  threshold_gte=threshold_gte, threshold_lte=threshold_lte,
                  dust_threshold=int(dust_threshold or 0), data_type=info["data_type"],
                  steps=["faces"])
    stored = load_params(cloudpath, info, mip)
    if stored is not None:
        differ = [k for k in params if k != "steps" and stored.get(k) != params[k]]
        if differ:
            was = ", ".join(f"{k}={stored.get(k)}" for k in differ)
            raise UserError(f"an earlier CCL run of {cloudpath} mip {mip} used {was}; run "
                            "`igneous image ccl clean` first, or repeat it with the same values")
        params["steps"] = stored.get("steps", ["faces"])
    save_params(cloudpath, info, mip, params)
    blocks = Blocks(start, stop, params["shape"])
    return _plan(ccl_faces, blocks, "ccl faces", cloudpath=cloudpath, mip=mip,
                 threshold_gte=threshold_gte, threshold_lte=threshold_lte,
                 fill_missing=fill_missing, dust_threshold=params["dust_threshold"])


def _later(cloudpath: str, mip: int, step: str, needs: str, **given) -> tuple[str, dict, int, dict]:
    cloudpath, info, mip = _open(cloudpath, mip)
    params = check_params(load_params(cloudpath, info, mip), given, step=step, needs=needs)
    start, stop = scale_bounds(info, mip)
    if params["bounds"] != [as_list(start), as_list(stop)] or params["data_type"] != info["data_type"]:
        raise UserError(f"{cloudpath} mip {mip} changed shape or type since `igneous image ccl "
                        "faces` ran; run `igneous image ccl clean` and start over")
    return cloudpath, info, mip, params


def create_ccl_equivalence_tasks(cloudpath: str, mip: int = 0, shape: Sequence[int] | None = None,
                                 threshold_gte: float | None = None,
                                 threshold_lte: float | None = None, fill_missing: bool = False,
                                 dust_threshold: int | None = None) -> TaskPlan:
    """Step 2: equivalence links between neighbouring blocks (None = as in step 1)."""
    cloudpath, info, mip, params = _later(
        cloudpath, mip, "links", "faces", shape=shape, threshold_gte=threshold_gte,
        threshold_lte=threshold_lte, dust_threshold=dust_threshold)
    _record(cloudpath, info, mip, params, "links")
    blocks = Blocks(*params["bounds"], params["shape"])
    return _plan(ccl_links, blocks, "ccl links", cloudpath=cloudpath, mip=mip)


def output_dtype(objects: int, encoding: str) -> str:
    """The smallest unsigned type holding ``objects`` ids (uint32+ for compressed_segmentation)."""
    floor = 32 if encoding == "compressed_segmentation" else 8
    for bits in (8, 16, 32, 64):
        if bits >= floor and objects < 2**bits:
            return f"uint{bits}"
    raise UserError(f"{objects} objects do not fit in uint64")


def _check_output(info: dict, mip: int, shape, chunk_size, encoding: str | None) -> tuple[str, np.ndarray]:
    """(encoding, chunk size) of the output, refusing what cannot work."""
    encoding = ENCODING_ALIASES.get(encoding or "compresso", encoding or "compresso")
    if encoding not in CCL_ENCODINGS:
        raise UserError(f"unknown --encoding {encoding!r}; choose one of {', '.join(CCL_ENCODINGS)} (or cseg)")
    chunk = vec(chunk_size) if chunk_size is not None else chunk_of(info, mip)
    if np.any(chunk <= 0) or np.any(vec(shape) % chunk):
        raise UserError(f"--shape {as_list(vec(shape))} must be a multiple of the output chunk "
                        f"size {as_list(chunk)} so that no two tasks write the same chunk")
    return encoding, chunk


def plan_relabel(src_path: str, dest_path: str, mip: int = 0, shape: Sequence[int] | None = None,
                 chunk_size: Sequence[int] | None = None, encoding: str | None = None,
                 threshold_gte: float | None = None, threshold_lte: float | None = None,
                 fill_missing: bool = False, dust_threshold: int | None = None,
                 compress: str | None = "gzip", require_labels: bool = True) -> TaskPlan:
    """Step 4 and the output layer's info. ``require_labels=False`` lets ``auto``
    queue it before step 3 has run (its tasks then wait in a later stage)."""
    src_path, info, mip, params = _later(
        src_path, mip, "relabel", "links", shape=shape, threshold_gte=threshold_gte,
        threshold_lte=threshold_lte, dust_threshold=dust_threshold)
    dest_path = normalize_path(dest_path)
    if dest_path.rstrip("/") == src_path.rstrip("/"):
        raise UserError("DEST must differ from SRC: the relabeling reads SRC while writing DEST")
    encoding, chunk = _check_output(info, mip, params["shape"], chunk_size, encoding)
    blocks = Blocks(*params["bounds"], params["shape"])
    summary = relabel_summary(src_path, info, mip)
    if require_labels and summary is None:
        raise UserError("relabel must come after calc-labels: run `igneous image ccl calc-labels` first")
    # without step 3's count, every voxel may be its own object: a safe bound
    objects = summary["objects"] if summary else int(np.prod(blocks.stop - blocks.start))
    dtype = output_dtype(objects, encoding)
    check_encoding(encoding, dtype, "segmentation")
    _write_dest_info(dest_path, info, mip, dtype, encoding, chunk)
    return _plan(ccl_relabel, blocks, "ccl relabel", src_path=src_path, dest_path=dest_path,
                 mip=mip, threshold_gte=params["threshold_gte"],
                 threshold_lte=params["threshold_lte"], fill_missing=fill_missing,
                 compress=compress)


def _write_dest_info(dest_path: str, info: dict, mip: int, dtype: str, encoding: str, chunk) -> None:
    from igneous.scales import new_layer_info

    scale = info["scales"][mip]
    new = new_layer_info("segmentation", dtype, encoding, scale["resolution"],
                         scale.get("voxel_offset", [0, 0, 0]), scale["size"], chunk)
    old = read_info(dest_path)
    if old is not None and old != new:
        raise UserError(f"{dest_path} already holds a different layer; delete it or choose another DEST")
    write_info(dest_path, new)


def create_ccl_relabel_tasks(src_path: str, dest_path: str, mip: int = 0,
                             shape: Sequence[int] | None = None,
                             chunk_size: Sequence[int] | None = None, encoding: str | None = None,
                             threshold_gte: float | None = None, threshold_lte: float | None = None,
                             fill_missing: bool = False, dust_threshold: int | None = None,
                             compress: str | None = "gzip") -> TaskPlan:
    """Step 4: write consecutive labels 1..N into a new layer ``dest_path``."""
    return plan_relabel(src_path, dest_path, mip, shape, chunk_size, encoding, threshold_gte,
                        threshold_lte, fill_missing, dust_threshold, compress)


def plan_ccl_auto(src_path: str, dest_path: str, mip: int = 0,
                  shape: Sequence[int] = DEFAULT_SHAPE, chunk_size: Sequence[int] | None = None,
                  encoding: str | None = None, threshold_gte: float | None = None,
                  threshold_lte: float | None = None, fill_missing: bool = False,
                  dust_threshold: int = 0, compress: str | None = "gzip",
                  clean: bool = True, memory_target: float = DEFAULT_MEMORY_TARGET) -> list:
    """Every step as ordered stages: faces, links, calc-labels (one task),
    relabel, and optionally clean."""
    src_path, info, mip = _open(src_path, mip)
    _check_output(info, mip, shape, chunk_size, encoding)  # before anything is written
    faces = create_ccl_face_tasks(src_path, mip, shape, threshold_gte, threshold_lte,
                                  fill_missing, dust_threshold, memory_target)
    links = create_ccl_equivalence_tasks(src_path, mip, fill_missing=fill_missing)
    relabel = plan_relabel(src_path, dest_path, mip, None, chunk_size, encoding,
                           fill_missing=fill_missing, compress=compress, require_labels=False)
    stages = [faces, links, [Task.of(ccl_calc_labels, dict(cloudpath=src_path, mip=mip))], relabel]
    if clean:
        stages.append([Task.of(ccl_clean, dict(cloudpath=src_path, mip=mip))])
    return stages
