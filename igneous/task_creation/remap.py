"""Planner for applying a label mapping to a segmentation (agglomeration)."""

from __future__ import annotations

import io
import json
import os

import numpy as np

from igneous.errors import UserError
from igneous.layers import LayerInfo
from igneous.task_creation.common import TaskPlan
from igneous.task_creation.derived import block_plan, block_step, derived_layer
from igneous.tasks.remap import remap


def load_label_mapping(mapping) -> np.ndarray:
    """(n, 2) uint64 pairs sorted by key from a dict, an (n, 2) array, or a
    path to a JSON object {"from": to} or an .npy of pairs. Ids are parsed as
    exact integers (never floats); a key mapped twice is refused."""
    if isinstance(mapping, (str, os.PathLike)):
        mapping = _read_mapping_file(os.fspath(mapping))
    if isinstance(mapping, dict):
        pairs = [(_label(k, "key"), _label(v, f"value of {k}")) for k, v in mapping.items()]
        arr = np.array(pairs, dtype=np.uint64).reshape(-1, 2)
    else:
        raw = np.asarray(mapping)
        if raw.ndim != 2 or raw.shape[1] != 2 or raw.dtype.kind not in "ui":
            raise UserError(f"a label mapping array must be integer pairs of shape (n, 2), "
                            f"not {raw.dtype} {raw.shape}")
        if raw.dtype.kind == "i" and raw.size and raw.min() < 0:
            raise UserError("a label mapping cannot hold negative labels")
        arr = raw.astype(np.uint64)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    dup = np.flatnonzero(arr[1:, 0] == arr[:-1, 0])
    if len(dup):
        k = int(arr[dup[0], 0])
        if np.any(arr[dup, 1] != arr[dup + 1, 1]):
            raise UserError(f"the mapping sends label {k} to more than one label; keep one pair")
        arr = np.delete(arr, dup + 1, axis=0)
    return np.ascontiguousarray(arr)


def _read_mapping_file(path: str):
    if not os.path.isfile(path):
        raise UserError(f"mapping file {path} does not exist")
    if path.lower().endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"cannot read {path} as .npy: {e}") from None

    def no_duplicates(items):
        seen = {}
        for k, v in items:
            if k in seen and seen[k] != v:
                raise UserError(f"{path}: label {k} appears twice with different targets")
            seen[k] = v
        return seen

    try:
        with open(path) as f:
            data = json.load(f, object_pairs_hook=no_duplicates)
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object {{\"from\": to, ...}} (or use .npy pairs)")
    return data


def _label(value, what: str) -> int:
    """An exact non-negative uint64 from a JSON key (str) or value (int)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise UserError(f"mapping {what} {value!r} must be an integer label (write large ids "
                        "as integers or strings, never floats)")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(f"mapping {what} {value!r} is not an integer label") from None
    if not 0 <= n < 2**64:
        raise UserError(f"mapping {what} {n} is outside the uint64 range")
    return n


def create_remap_tasks(
    src_layer: str, dest_layer: str, mapping, mip: int = 0, shape=None,
    preserve_missing_labels: bool = True, fill_missing: bool = False, chunk_size=None,
    encoding: str | None = None, bounds=None, bounds_mip: int = 0,
    compress: str | None = "gzip", overwrite_info: bool = False,
) -> TaskPlan:
    """Remap a segmentation into ``dest_layer`` with ``mapping`` (a dict, an
    (n, 2) array or a .json/.npy path). Labels absent from the mapping are
    kept (``preserve_missing_labels``) or set to 0. The destination keeps the
    source dtype unless a target label needs uint64."""
    from igneous.storage import open_store
    from igneous.tasks.remap import MAPPING_KEY

    pairs = load_label_mapping(mapping)

    def check(layer: LayerInfo) -> None:
        if layer.info.get("type") != "segmentation" or layer.dtype.kind not in "ui":
            raise UserError(f"remap needs a segmentation layer with integer labels; "
                            f"{layer.cloudpath} is a {layer.dtype} {layer.info.get('type', 'image')}")

    src_dtype = LayerInfo(src_layer).dtype
    data_type = None
    if len(pairs) and src_dtype.kind in "ui" and int(pairs[:, 1].max()) > np.iinfo(src_dtype).max:
        data_type = "uint64"
    d = derived_layer(src_layer, dest_layer, mip, bounds=bounds, bounds_mip=bounds_mip,
                      chunk_size=chunk_size, encoding=encoding, data_type=data_type, check=check,
                      overwrite_info=overwrite_info)
    buf = io.BytesIO()
    np.save(buf, pairs, allow_pickle=False)
    open_store(d.dest_path).put(MAPPING_KEY, buf.getvalue())
    kwargs = dict(preserve_missing_labels=bool(preserve_missing_labels),
                  fill_missing=bool(fill_missing), compress=compress)
    return block_plan(remap, d, block_step(d, shape), kwargs, f"remap mip {d.mip}")
