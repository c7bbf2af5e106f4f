"""What a run costs: storage requests by billing class, bytes moved and
CPU-seconds, per kind of task, and an estimated price from an editable table.

A worker measures every task (``Measure``): the process-wide storage
counters (igneous.storage.totals(), which include CloudVolume's own IO) and
the process's user+system CPU time, before and after. It keeps the sums by
task name (a ``Tally``) and adds them to the queue now and then
(``TaskQueue.add_usage``), so every backend holds the run's totals durably;
the no-queue pool sums what its processes report. ``igneous queue status``
shows them with a price estimate; every run also writes a JSON report
(``write_report``). docs/cost.md describes both.

Usage is kept as ``{task name: {field: number}}``: the fields are ``tasks``,
``failed``, ``cpu_sec``, ``wall_sec`` and every field of
igneous.storage.Counts, whatever fields it has (nothing here names them).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from typing import Any

from igneous.storage.accounting import Counts, totals

Usage = dict[str, dict[str, float]]  # task name -> field -> value

TASKS, FAILED, CPU_SEC, WALL_SEC = "tasks", "failed", "cpu_sec", "wall_sec"
PRICES_ENV = "IGNEOUS_PRICES"
REPORT_ENV = "IGNEOUS_REPORT_DIR"
GIB = 2 ** 30


def storage_fields() -> list[str]:
    """The names of the storage counters (every field of Counts)."""
    return [f.name for f in fields(Counts)]


def is_bytes(name: str) -> bool:
    return name.startswith("bytes")


# -- measuring ----------------------------------------------------------------

class Measure:
    """Storage counts, CPU-seconds and wall seconds of the block it wraps."""

    counts: Counts
    cpu_sec: float
    wall_sec: float

    def __enter__(self) -> Measure:
        self._counts, self._cpu, self._wall = totals(), time.process_time(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.counts = totals() - self._counts
        self.cpu_sec = time.process_time() - self._cpu
        self.wall_sec = time.monotonic() - self._wall

    def row(self, *, ok: bool = True) -> dict[str, float]:
        """This measurement as usage fields (one task, finished or failed)."""
        out: dict[str, float] = {TASKS: int(ok), FAILED: int(not ok), CPU_SEC: self.cpu_sec,
                                 WALL_SEC: self.wall_sec}
        out.update(self.counts.as_dict())
        return out


def add_into(usage: Usage, more: Mapping[str, Mapping[str, float]]) -> Usage:
    """Add ``more`` into ``usage`` (in place) and return it."""
    for name, row in more.items():
        mine = usage.setdefault(name, {})
        for key, value in row.items():
            mine[key] = mine.get(key, 0) + value
    return usage


class Tally:
    """Usage of the tasks this process ran and has not handed on yet (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: Usage = {}
        self._since = time.monotonic()

    def add(self, name: str, row: Mapping[str, float]) -> None:
        with self._lock:
            add_into(self._usage, {name: row})

    def put_back(self, usage: Usage) -> None:
        """Keep ``usage`` (taken, but not handed on) for the next take."""
        with self._lock:
            add_into(self._usage, usage)

    def take(self) -> Usage:
        """Everything added since the last take (and forget it)."""
        with self._lock:
            usage, self._usage = self._usage, {}
            self._since = time.monotonic()
            return usage

    def age(self) -> float:
        """Seconds since the last take."""
        return time.monotonic() - self._since


def flatten(usage: Usage) -> Iterator[tuple[str, str, float]]:
    """(task, field, value) rows, how queues store usage."""
    for name, row in usage.items():
        for key, value in row.items():
            yield name, key, value


def unflatten(rows: Iterable[tuple[str, str, float]]) -> Usage:
    usage: Usage = {}
    for name, key, value in rows:
        add_into(usage, {name: {key: value}})
    return usage


def total(usage: Usage) -> dict[str, float]:
    """All task kinds summed (every storage field present, zero if unseen)."""
    out: dict[str, float] = dict.fromkeys([TASKS, FAILED, CPU_SEC, WALL_SEC, *storage_fields()], 0)
    for row in usage.values():
        for key, value in row.items():
            out[key] = out.get(key, 0) + value
    return out


# -- prices -------------------------------------------------------------------

def shipped_prices_path() -> str:
    return os.path.join(os.path.dirname(__file__), "prices.toml")


def _merge(base: dict, extra: Mapping) -> dict:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_prices(path: str | None = None) -> dict[str, Any]:
    """The shipped price table, overridden by ``path`` or $IGNEOUS_PRICES."""
    import tomllib

    from igneous.errors import UserError

    with open(shipped_prices_path(), "rb") as f:
        table = tomllib.load(f)
    path = path or os.environ.get(PRICES_ENV) or None
    if path:
        try:
            with open(os.path.expanduser(path), "rb") as f:
                _merge(table, tomllib.load(f))
        except OSError as e:
            raise UserError(f"cannot read the price table {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"price table {path} is not valid TOML: {e}") from None
        table["overridden_by"] = os.path.abspath(os.path.expanduser(path))
    return table


def providers(prices: Mapping[str, Any]) -> list[str]:
    return [k for k, v in prices.items() if isinstance(v, Mapping)]


def estimate(row: Mapping[str, float], prices: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """{provider: {requests, cpu, total, egress, stored_month}} in US$ for the
    usage ``row`` (total = requests + CPU; egress and a month of storing what
    was written are shown beside it, as they depend on where workers run and
    how long the output is kept)."""
    out = {}
    for name in providers(prices):
        table = prices[name]
        per_request = table.get("per_1000_requests", {})
        per_gib = table.get("per_gib", {})
        requests = sum(row.get(k, 0) * float(p) / 1000 for k, p in per_request.items())
        cpu = row.get(CPU_SEC, 0) / 3600 * float(table.get("per_core_hour", {}).get("cpu", 0))
        out[name] = {
            "requests": requests, "cpu": cpu, "total": requests + cpu,
            "egress": row.get("bytes_in", 0) / GIB * float(per_gib.get("egress", 0)),
            "stored_month": row.get("bytes_out", 0) / GIB * float(per_gib.get("stored_month", 0)),
        }
    return out


# -- showing ------------------------------------------------------------------

def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def dollars(x: float) -> str:
    return f"${x:.2f}" if x >= 1 else f"${x:.6f}".rstrip("0").rstrip(".") if x else "$0"


def describe_row(row: Mapping[str, float]) -> tuple[str, str]:
    """(requests, bytes) of a usage row as text: every storage counter, by name."""
    names = storage_fields()
    requests = ", ".join(f"{int(row.get(k, 0)):,} {k}" for k in names if not is_bytes(k))
    moved = ", ".join(f"{human_bytes(row.get(k, 0))} {k.removeprefix('bytes_')}"
                      for k in names if is_bytes(k))
    return requests, moved


def render(usage: Usage, prices: Mapping[str, Any]) -> list[str]:
    """The lines ``igneous queue status`` prints about usage and price."""
    row = total(usage)
    requests, moved = describe_row(row)
    lines = [f"Usage:      {int(row[TASKS]):,} tasks ({int(row[FAILED]):,} failed attempts), "
             f"{row[CPU_SEC]:.1f} CPU-s, {row[WALL_SEC]:.1f} s in tasks",
             f"  requests: {requests}",
             f"  bytes:    {moved}"]
    if len(usage) > 1:
        for name in sorted(usage):
            r = total({name: usage[name]})
            n_req = Counts(**{k: int(r.get(k, 0)) for k in storage_fields()}).requests
            lines.append(f"  {name}: {int(r[TASKS]):,} tasks, {n_req:,} requests, "
                         f"{r[CPU_SEC]:.1f} CPU-s")
    for i, (name, est) in enumerate(estimate(row, prices).items()):
        head = "Price:" if i == 0 else ""
        lines.append(f"{head:<12}{name} {dollars(est['total'])} (requests "
                     f"{dollars(est['requests'])}, CPU {dollars(est['cpu'])}); egress if read "
                     f"outside the region {dollars(est['egress'])}; storing the output "
                     f"{dollars(est['stored_month'])}/month")
    where = prices.get("overridden_by") or "igneous/prices.toml"
    lines.append(f"            (list prices of {prices.get('date', '?')}, {where}; "
                 f"edit with {PRICES_ENV}=FILE)")
    return lines


def report(usage: Usage, prices: Mapping[str, Any], **about: Any) -> dict[str, Any]:
    """A run's report: what ran, what it used, what that costs at list prices."""
    row = total(usage)
    return {
        **about,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "total": row,
        "by_task": usage,
        "price_usd": estimate(row, prices),
        "prices": {"date": prices.get("date"), "source": prices.get("source"),
                   "file": prices.get("overridden_by") or shipped_prices_path()},
    }


def report_dir() -> str | None:
    """Where run reports go: $IGNEOUS_REPORT_DIR (``none``: nowhere), else
    $XDG_STATE_HOME/igneous/runs (~/.local/state/igneous/runs)."""
    where = os.environ.get(REPORT_ENV)
    if where is not None:
        return None if where.strip().lower() in ("", "none", "off") else os.path.expanduser(where)
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "igneous", "runs")


def write_report(usage: Usage, label: str, **about: Any) -> str | None:
    """Write the report of a run named ``label`` (e.g. the queue); its path,
    or None when reports are off or cannot be written (a run never fails for it)."""
    where = report_dir()
    if where is None:
        return None
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")[-80:] or "run"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(where, f"{stamp}-{os.getpid()}-{name}.json")
    try:
        body = report(usage, load_prices(), run=label, **about)
        os.makedirs(where, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(body, f, indent=1)
        os.replace(path + ".tmp", path)
    except Exception as e:  # noqa: BLE001 - a report must never fail the run it describes
        import sys

        print(f"igneous: could not write the run report to {where}: {e}", file=sys.stderr)
        return None
    return path
