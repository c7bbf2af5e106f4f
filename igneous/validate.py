"""Checks of user input shared by every planner, the CLI and pipeline files.

A planner calls these before it writes anything, so the command line, the
scripting API (``igneous.task_creation``) and ``igneous run`` refuse the same
bad input with the same one-line ``UserError``: zero, negative or fractional
chunk sizes, task shapes and factors; an info file with missing keys or
inconsistent scales; a mip past the top; an absurd memory target; a queue
path that cannot hold a queue; a pipeline option of the wrong type.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from igneous.errors import UserError

DTYPES = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
          "float32", "float64"}
LAYER_TYPES = {"image", "segmentation"}
# a per-task memory target outside these bounds is a typo (bytes for gigabytes,
# a run of extra zeros): 4 KiB is one 16^3 uint8 chunk, 1 PiB no machine has
SMALLEST_MEMORY = 4 * 2**10
LARGEST_MEMORY = 2**50
# options of planners (and pipeline steps) that are voxel triples of positive integers
POSITIVE_TRIPLES = ("chunk_size", "shape", "factor")


def _integer(x: Any) -> int | None:
    """``x`` as an int when it is a whole number (not a bool), else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real) and math.isfinite(float(x)) and float(x).is_integer():
        return int(x)
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            return None
    return None


def _items(value: Any) -> list | None:
    if isinstance(value, str):
        return [p for p in value.replace(" ", "").split(",") if p != ""]
    try:
        return list(value)
    except TypeError:
        return None


def int_triple(value: Any, name: str, *, positive: bool = True) -> tuple[int, int, int] | None:
    """``value`` (a sequence or "x,y,z") as three integers, each > 0 when
    ``positive``; None stays None. ``name`` is how the user spelled it."""
    if value is None:
        return None
    items = _items(value)
    ints = [_integer(x) for x in items] if items is not None else None
    what = "positive integers" if positive else "integers"
    example = "64,64,64" if positive else "0,0,-10"
    bad = ints is None or len(ints) != 3 or any(i is None for i in ints)
    if bad or (positive and any(i <= 0 for i in ints)):
        raise UserError(f"{_label(name)} must be three {what} (x,y,z) like {example}, "
                        f"not {_show(value)}")
    return ints[0], ints[1], ints[2]


def _label(name: str) -> str:
    """A keyword as both API and CLI users know it: ``chunk_size (--chunk-size)``."""
    return name if name.startswith("-") else f"{name} (--{name.replace('_', '-')})"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return str([x.item() if hasattr(x, "item") else x for x in value])
    except TypeError:
        return repr(value)


def positive_numbers(value: Any, name: str) -> tuple[float, float, float]:
    """Three finite numbers > 0 (a resolution in nm)."""
    items = _items(value)
    try:
        nums = [float(x) for x in items] if items is not None else []
    except (TypeError, ValueError):
        nums = []
    if len(nums) != 3 or any(isinstance(x, bool) for x in items) \
            or not all(math.isfinite(x) and x > 0 for x in nums):
        raise UserError(f"{_label(name)} must be three positive numbers (x,y,z) like 4,4,40, "
                        f"not {_show(value)}")
    return nums[0], nums[1], nums[2]


def factor(value: Any, name: str = "factor") -> tuple[int, int, int]:
    """A downsample factor: positive integers, at least one above 1."""
    f = int_triple(value, name)
    if f is None or all(x == 1 for x in f):
        raise UserError(f"{_label(name)} must be positive integers with at least one > 1 (e.g. 2,2,1), "
                        f"not {_show(value)}")
    return f


def memory_target(value: Any) -> int:
    """A per-task memory target (bytes, or a size like 3.5G) within sane limits."""
    from igneous.memory import parse_memory

    if isinstance(value, bool):
        raise UserError(f"memory target must be a size like 4e9 or 3.5G, not {value!r}")
    if isinstance(value, numbers.Real) and not math.isfinite(float(value)):
        raise UserError(f"memory target must be a finite size, not {value!r}")
    size = parse_memory(value)
    if not SMALLEST_MEMORY <= size <= LARGEST_MEMORY:
        raise UserError(f"memory target {value!r} ({size} bytes) is not a sensible per-task "
                        "memory target; give one between 4KiB and 1PiB, e.g. --memory 4G")
    return size


def nonnegative_int(value: Any, name: str) -> int:
    i = _integer(value)
    if i is None or i < 0:
        raise UserError(f"{name} must be an integer >= 0, not {value!r}")
    return i


# -- info files -------------------------------------------------------------------

def check_info(info: Any, path: str) -> None:
    """Refuse an info file a planner cannot trust: missing keys, impossible
    values, or scales that contradict each other."""
    where = f"info file of {path}"
    if not isinstance(info, dict):
        raise UserError(f"malformed {where}: it is not a JSON object")
    dtype = info.get("data_type")
    if dtype not in DTYPES:
        raise UserError(f"{where}: data_type {dtype!r} cannot be stored in a precomputed layer "
                        f"(one of {', '.join(sorted(DTYPES))})")
    channels = _integer(info.get("num_channels", 1))
    if channels is None or channels < 1:
        raise UserError(f"malformed {where}: num_channels must be an integer >= 1, "
                        f"not {info.get('num_channels')!r}")
    if info.get("type", "image") not in LAYER_TYPES:
        raise UserError(f"malformed {where}: type {info.get('type')!r} is not image or segmentation")
    scales = info.get("scales")
    if not isinstance(scales, list) or not scales:
        raise UserError(f"malformed {where}: it needs a non-empty 'scales' list")
    keys: dict[str, int] = {}
    previous = None
    for mip, scale in enumerate(scales):
        at = f"malformed {where}: scale {mip}"
        if not isinstance(scale, dict):
            raise UserError(f"{at} is not a JSON object")
        for key in ("key", "resolution", "size", "chunk_sizes"):
            if key not in scale:
                raise UserError(f"{at} has no {key!r}")
        res = _numbers(scale["resolution"])
        if res is None or any(not (math.isfinite(r) and r > 0) for r in res):
            raise UserError(f"{at}: resolution must be three positive numbers, "
                            f"not {scale['resolution']!r}")
        _triple_in(scale["size"], f"{at}: size")
        _triple_in(scale.get("voxel_offset", (0, 0, 0)), f"{at}: voxel_offset", positive=False)
        chunks = scale["chunk_sizes"]
        if not isinstance(chunks, list) or not chunks:
            raise UserError(f"{at}: chunk_sizes must be a list of x,y,z triples, not {chunks!r}")
        for c in chunks:
            _triple_in(c, f"{at}: chunk_sizes")
        key = str(scale["key"])
        if key in keys:
            raise UserError(f"{at} has the same key {key!r} as scale {keys[key]}; each scale "
                            "needs its own directory")
        keys[key] = mip
        if previous is not None and any(r < p * (1 - 1e-6) for r, p in zip(res, previous)):
            raise UserError(f"{at}: resolution {res} is finer than scale {mip - 1}'s {previous}; "
                            "scales must go from fine to coarse")
        previous = res


def _numbers(value: Any) -> list[float] | None:
    items = _items(value) if not isinstance(value, str) else None
    if items is None or len(items) != 3:
        return None
    if any(isinstance(x, bool) or not isinstance(x, numbers.Real) for x in items):
        return None
    return [float(x) for x in items]


def _triple_in(value: Any, what: str, *, positive: bool = True) -> None:
    items = _items(value) if not isinstance(value, str) else None
    ints = [_integer(x) if not isinstance(x, str) else None for x in items] if items else None
    if not ints or len(ints) != 3 or any(i is None for i in ints) \
            or (positive and any(i <= 0 for i in ints)):
        kind = "positive integers" if positive else "integers"
        raise UserError(f"{what} must be three {kind}, not {value!r}")


def load_layer(path: str, mip: int = 0):
    """``igneous.layers.load_layer`` plus ``check_info`` (what planners open)."""
    from igneous import layers

    try:
        layer = layers.LayerInfo(path)
    except UserError:
        raise
    except Exception as e:
        # botocore raises AccessDenied, NoSuchBucket, ... as generated ClientError subclasses
        if any(c.__name__ in ("ClientError", "BotoCoreError") for c in type(e).__mro__):
            raise UserError(f"cannot access {path}: {e}") from None
        raise
    check_info(layer.info, layer.cloudpath)
    check_mip(layer.info, layer.cloudpath, mip)
    return layer


def check_mip(info: dict, path: str, mip: Any, name: str = "mip") -> int:
    """``mip`` resolved (negative counts from the top) and checked to exist."""
    n = len(info["scales"])
    m = _integer(mip)
    if m is None:
        raise UserError(f"{name} must be an integer, not {mip!r}")
    resolved = n + m if m < 0 else m
    if not 0 <= resolved < n:
        raise UserError(f"{name} {m} does not exist in {path} (it has mips 0..{n - 1}); "
                        f"use --{name.replace('_', '-')} within that range")
    return resolved


def single_channel(info: dict, path: str, what: str) -> None:
    n = int(info.get("num_channels", 1))
    if n != 1:
        raise UserError(f"{path} has {n} channels; {what} needs a single-channel layer "
                        "(transfer one channel out first)")


# -- pipeline options ----------------------------------------------------------------

def option_problem(name: str, value: Any, default: Any, annotation: Any = None) -> str | None:
    """Why ``value`` cannot be the planner keyword ``name`` (whose default is
    ``default`` and type hint ``annotation``), or None. Used for pipeline
    files, which have no click types."""
    try:
        if name in POSITIVE_TRIPLES:
            if value is not None:
                factor(value, name) if name == "factor" else int_triple(value, name)
            return None
        if name == "memory_target":
            memory_target(value)
            return None
    except UserError as e:
        return str(e)
    if value is None:
        return None
    if default is None:  # an optional keyword: go by its type hint ("int | None")
        hint = str(annotation or "").split("|")[0].strip()
        default = {"int": 0, "float": 0.0, "bool": False, "str": ""}.get(hint)
        if default is None:
            return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = _integer(value) is not None and not isinstance(value, str)
    elif isinstance(default, float):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, (str, bool))  # e.g. compress = false
    elif isinstance(default, (tuple, list)):
        ok = isinstance(value, (tuple, list))
    else:
        ok = True
    if ok:
        return None
    return f"{name} must be of type {type(default).__name__}, not {value!r}"


def triples(options: dict, names: Sequence[str] = POSITIVE_TRIPLES) -> None:
    """Check the positive-triple keywords present in ``options``."""
    for name in names:
        if options.get(name) is not None:
            problem = option_problem(name, options[name], None)
            if problem:
                raise UserError(problem)
