"""Run a workflow on our igneous and on the reference igneous-pipeline, side by side.

A *workflow* is a list of steps; each step is one shell command template per
implementation (``{igneous} -p 2 execute -x {queue}``). Every run gets a fresh
copy of the inputs (``prepare``), runs alternate ours / reference / ours /
reference, and each command is measured for

* wall time (fork to reap),
* CPU time: user + sys of the command and every descendant it waited for
  (``os.wait4`` rusage of the child),
* peak memory of the process tree: the sum of RSS over the tree, sampled every
  50 ms with psutil (forked workers share pages, so this overstates real use
  a little for both sides alike), and the largest single-process ``ru_maxrss``.

The summary table shows medians and the ratio ours / reference (below 1 is
better for times and memory; for rates, above 1 is better). After the first
pair of runs a workflow may compare the two outputs (``compare``).

    python -m bench.harness --list
    python -m bench.harness queue image-downsample --repeat 2

The reference lives in its own virtual environment in ``.bench/reference``,
created on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
REFERENCE = BENCH / "reference"
INPUTS = BENCH / "inputs"
RUNS = BENCH / "runs"
RESULTS = BENCH / "results"


def save_results(name: str, data, keep: str | None = None) -> Path:
    """Write ``data`` as ``RESULTS/name`` (JSON) and return the path. ``keep``:
    a dict key of ``data`` whose entries from an earlier file of that name are
    kept where this run has none (so ``--only`` runs add up)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / name
    if keep and out.exists():
        data[keep] = json.loads(out.read_text()).get(keep, {}) | data[keep]
    out.write_text(json.dumps(data, indent=1))
    return out
REFERENCE_PACKAGES = ["igneous-pipeline", "crackle-codec"]
SAMPLE_SEC = 0.05
DEFAULT_TIMEOUT = 1800.0


# -- implementations -----------------------------------------------------------

@dataclass(frozen=True)
class Impl:
    """One implementation under test: where its interpreter and CLI live."""

    name: str
    python: str
    igneous: str
    queue_scheme: str  # prefix that makes a directory a queue URL for this CLI

    def queue_url(self, path: Path | str) -> str:
        return f"{self.queue_scheme}{path}"

    def env(self) -> dict[str, str]:
        """Environment for its commands: its own bin first, nothing of ours leaking in."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = os.pathsep.join([str(Path(self.python).parent), env.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        return env


def ensure_reference(*, quiet: bool = False) -> Path:
    """The reference venv, created (``python3 -m venv`` + pip install) if missing."""
    cli = REFERENCE / "bin" / "igneous"
    if cli.exists():
        return REFERENCE
    if not quiet:
        print(f"creating the reference environment in {REFERENCE} ...", flush=True)
    BENCH.mkdir(exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(REFERENCE)], check=True)
    subprocess.run([str(REFERENCE / "bin" / "pip"), "install", *REFERENCE_PACKAGES], check=True)
    if not cli.exists():
        raise RuntimeError(f"pip install finished but {cli} does not exist")
    return REFERENCE


def ours() -> Impl:
    bindir = Path(sys.executable).parent
    cli = bindir / "igneous"
    # the real console script, not a pyenv shim (a shim adds ~100 ms per call)
    igneous = str(cli) if cli.exists() else f"{shlex.quote(sys.executable)} -m igneous"
    return Impl("ours", sys.executable, igneous, "")


def reference() -> Impl:
    venv = ensure_reference()
    return Impl("reference", str(venv / "bin" / "python"), str(venv / "bin" / "igneous"), "fq://")


# -- measuring one command -------------------------------------------------------

@dataclass
class Sample:
    """What one command cost."""

    command: str
    returncode: int
    wall: float
    user: float
    sys: float
    peak_tree_rss: int  # bytes, sampled sum over the process tree
    max_rss: int  # bytes, largest single process (ru_maxrss)
    # our own RSS when we forked it: a child's ru_maxrss never reads below this
    # (Linux carries the pre-exec high-water mark over), so keep the harness small
    spawner_rss: int = 0
    timed_out: bool = False
    stdout: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys


class _TreeSampler(threading.Thread):
    """Samples summed RSS over a process tree; kills the tree's group on timeout."""

    def __init__(self, pid: int, timeout: float):
        super().__init__(daemon=True)
        self.pid = pid
        self.timeout = timeout
        self.peak = 0
        self.timed_out = False
        self.done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.done.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            if time.monotonic() - start > self.timeout:
                self.timed_out = True
                try:
                    os.killpg(self.pid, signal.SIGKILL)  # the group of the child we started
                except ProcessLookupError:
                    pass
                return
            self.done.wait(SAMPLE_SEC)


def measure(command: str, *, impl: Impl, cwd: Path, log: Path,
            timeout: float = DEFAULT_TIMEOUT) -> Sample:
    """Run one shell command, measuring wall, CPU and memory of its whole tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out_path = log.with_suffix(".out")
    with open(out_path, "wb") as out, open(log, "ab") as err:
        err.write(f"$ {command}\n".encode())
        err.flush()
        spawner_rss = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["/bin/bash", "-c", command], cwd=cwd, env=impl.env(), stdout=out, stderr=err,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        sampler = _TreeSampler(proc.pid, timeout)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        sampler.done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Sample(
        command=command, returncode=proc.returncode, wall=wall, user=ru.ru_utime, sys=ru.ru_stime,
        peak_tree_rss=sampler.peak, max_rss=ru.ru_maxrss * 1024, spawner_rss=spawner_rss,
        timed_out=sampler.timed_out,
        stdout=out_path.read_text(errors="replace"),
    )


def quiet_ok(command: str, impl: Impl, cwd: Path = ROOT) -> bool:
    """Does ``command`` exit 0 (used to probe whether a CLI command exists)?"""
    r = subprocess.run(["/bin/bash", "-c", command], cwd=cwd, env=impl.env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                       check=False)
    return r.returncode == 0


# -- workflows -------------------------------------------------------------------

Context = dict  # placeholders for the templates: src, dest, queue, igneous, python, ...
Metrics = Callable[[Sample, Context], dict]


@dataclass
class Step:
    """One command per implementation; ``metrics`` adds derived figures (e.g. tasks/s)."""

    label: str
    commands: dict[str, str]  # impl name -> shell template
    metrics: Metrics | None = None


@dataclass
class Workflow:
    name: str
    description: str
    steps: list[Step]
    # makes fresh inputs in the run directory; returns the template placeholders
    prepare: Callable[[Path, Impl], Context]
    # ours vs reference contexts -> lines of a report (None: nothing to compare)
    compare: Callable[[Context, Context], list[str]] | None = None
    # per impl: a command that must exit 0 for the workflow to run on that impl
    probe: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT


WORKFLOWS: dict[str, Workflow] = {}
_WORKFLOW_MODULES = ("bench.queue", "bench.image", "bench.analysis", "bench.mesh", "bench.skeleton",
                     "bench.compat")


def register(wf: Workflow) -> Workflow:
    """Add (or replace, e.g. with other parameters) a workflow by name."""
    WORKFLOWS[wf.name] = wf
    return wf


def startup_workflow() -> Workflow:
    """Start-up cost of each CLI: ``igneous --help`` and ``igneous image --help``."""
    return Workflow(
        name="startup", description="CLI start-up: igneous --help, igneous image --help",
        steps=[Step("--help", {"ours": "{igneous} --help", "reference": "{igneous} --help"}),
               Step("image", {"ours": "{igneous} image --help",
                              "reference": "{igneous} image --help"})],
        prepare=lambda run_dir, impl: {}, timeout=120,
    )


def load_workflows() -> dict[str, Workflow]:
    import importlib

    WORKFLOWS.setdefault("startup", startup_workflow())
    for module in _WORKFLOW_MODULES:
        for wf in importlib.import_module(module).workflows():
            WORKFLOWS.setdefault(wf.name, wf)
    return WORKFLOWS


def fresh_copy(src: Path, dest: Path) -> Path:
    """A private copy of an input layer for one run."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    return dest


def _render(template: str, ctx: Context) -> str:
    quoted = {k: (v if k in ("igneous",) else shlex.quote(str(v))) for k, v in ctx.items()}
    return template.format(**quoted)


@dataclass
class RunRecord:
    workflow: str
    impl: str
    repeat: int
    steps: dict[str, dict]  # label -> Sample fields + metrics
    ok: bool


def _run_once(wf: Workflow, impl: Impl, repeat: int, run_dir: Path) -> tuple[RunRecord, Context]:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    ctx = {"igneous": impl.igneous, "python": impl.python, "root": ROOT, "impl": impl.name,
           "run": run_dir}
    ctx.update(wf.prepare(run_dir, impl))
    if "queue" in ctx:
        ctx["queue_url"] = impl.queue_url(ctx["queue"])
    steps: dict[str, dict] = {}
    ok = True
    for step in wf.steps:
        template = step.commands[impl.name]
        sample = measure(_render(template, ctx), impl=impl, cwd=run_dir,
                         log=run_dir / "logs" / f"{step.label}.log", timeout=wf.timeout)
        record = asdict(sample)
        record.pop("stdout")
        record["cpu"] = sample.cpu
        record["metrics"] = {}
        if sample.returncode != 0 or sample.timed_out:
            ok = False
            why = "timed out" if sample.timed_out else f"exit {sample.returncode}"
            print(f"  !! {impl.name} {step.label}: {why}; see {run_dir / 'logs'}", flush=True)
            steps[step.label] = record
            break
        if step.metrics:
            record["metrics"] = step.metrics(sample, ctx)
        steps[step.label] = record
    return RunRecord(wf.name, impl.name, repeat, steps, ok), ctx


def run_workflow(wf: Workflow, impls: list[Impl], *, repeat: int = 2, compare: bool = True,
                 keep: bool = False) -> dict:
    """Alternate the implementations ``repeat`` times; returns a JSON-able result."""
    available: list[Impl] = []
    unavailable: dict[str, str] = {}
    for impl in impls:
        probe = wf.probe.get(impl.name)
        if probe and not quiet_ok(_render(probe, {"igneous": impl.igneous, "python": impl.python,
                                                  "root": ROOT}), impl):
            unavailable[impl.name] = f"not available (`{probe.format(igneous='igneous')}` failed)"
            print(f"[{wf.name}] {impl.name}: {unavailable[impl.name]}", flush=True)
        else:
            available.append(impl)
    records: list[RunRecord] = []
    comparison: list[str] | None = None
    for r in range(repeat):
        contexts: dict[str, Context] = {}
        for impl in available:
            run_dir = RUNS / wf.name / f"{impl.name}-{r}"
            print(f"[{wf.name}] run {r + 1}/{repeat} {impl.name} ...", flush=True)
            record, ctx = _run_once(wf, impl, r, run_dir)
            records.append(record)
            contexts[impl.name] = ctx
            line = "  ".join(f"{k}: {v['wall']:.2f}s wall {v['cpu']:.2f}s cpu" +
                             "".join(f" {mk}={mv:,.0f}" for mk, mv in v["metrics"].items())
                             for k, v in record.steps.items())
            print(f"    {line}", flush=True)
        both_ok = all(rec.ok for rec in records[-len(available):])
        if (compare and wf.compare and r == 0 and len(contexts) == 2 and both_ok):
            print(f"[{wf.name}] comparing outputs (ours vs reference) ...", flush=True)
            comparison = wf.compare(contexts["ours"], contexts["reference"])
            for line in comparison:
                print(f"    {line}", flush=True)
        if not keep:
            for ctx in contexts.values():
                shutil.rmtree(ctx["run"], ignore_errors=True)
    return {"workflow": wf.name, "description": wf.description, "repeat": repeat,
            "unavailable": unavailable, "runs": [asdict(x) for x in records],
            "comparison": comparison}


# -- summary -----------------------------------------------------------------------

_FIGURES = [  # key, heading, scale, format
    ("wall", "wall s", 1.0, "{:.2f}"),
    ("cpu", "cpu s", 1.0, "{:.2f}"),
    ("peak_tree_rss", "tree RSS MB", 1 / 2**20, "{:.0f}"),
    ("max_rss", "max RSS MB", 1 / 2**20, "{:.0f}"),
]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(result: dict) -> list[dict]:
    """Median per (step, figure) for each implementation, plus ours/reference.

    The "total" row sums times over the steps and takes the largest memory.
    """
    runs = [r for r in result["runs"] if r["ok"]]
    labels: list[str] = []
    for r in result["runs"]:
        labels += [k for k in r["steps"] if k not in labels]

    def value(run: dict, label: str, key: str, is_metric: bool) -> float | None:
        if label == "total":
            per = [s[key] for s in run["steps"].values()]
            return max(per) if "rss" in key else sum(per)
        step = run["steps"].get(label)
        if step is None:
            return None
        return step["metrics"].get(key) if is_metric else step[key]

    rows = []
    for label in [*labels, "total"]:
        figures = [(k, h, s, f, False) for k, h, s, f in _FIGURES]
        if label != "total":
            extra = sorted({m for r in runs for m in r["steps"].get(label, {}).get("metrics", {})})
            figures += [(m, m, 1.0, "{:,.0f}", True) for m in extra]
        for key, heading, scale, fmt, is_metric in figures:
            row = {"step": label, "figure": heading, "fmt": fmt}
            for impl in ("ours", "reference"):
                vals = [value(r, label, key, is_metric) for r in runs if r["impl"] == impl]
                row[impl] = _median([v * scale for v in vals if v is not None])
            if row["ours"] is None and row["reference"] is None:
                continue
            o, ref = row["ours"], row["reference"]
            row["ratio"] = (o / ref) if (o is not None and ref) else None
            rows.append(row)
    return rows


def format_table(result: dict) -> str:
    rows = summarize(result)
    n = {impl: sum(1 for r in result["runs"] if r["impl"] == impl and r["ok"])
         for impl in ("ours", "reference")}
    head = f"== {result['workflow']}: {result['description']} (medians; runs ok: " \
           f"ours {n['ours']}, reference {n['reference']})"
    lines = [head]
    for impl, why in result.get("unavailable", {}).items():
        lines.append(f"   {impl}: {why}")
    lines.append(f"   {'step':<12} {'figure':<16} {'ours':>12} {'reference':>12} {'ours/ref':>9}")
    for row in rows:
        ours_cell, ref_cell = (row["fmt"].format(v) if v is not None else "n/a"
                               for v in (row["ours"], row["reference"]))
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "n/a"
        lines.append(f"   {row['step']:<12} {row['figure']:<16} {ours_cell:>12} "
                     f"{ref_cell:>12} {ratio:>9}")
    if result.get("comparison"):
        lines.append("   output comparison (first pair of runs):")
        lines += [f"     {x}" for x in result["comparison"]]
    return "\n".join(lines)


def run_and_report(names: list[str], *, repeat: int, compare: bool, keep: bool,
                   impls: list[str] | None = None, save: bool = True) -> list[dict]:
    """Run named workflows, print their tables, save JSON under .bench/results."""
    workflows = load_workflows()
    chosen = [ours(), reference()]
    if impls:
        chosen = [i for i in chosen if i.name in impls]
    results = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    for name in names:
        result = run_workflow(workflows[name], chosen, repeat=repeat, compare=compare, keep=keep)
        result["started"] = started
        result["machine"] = machine_notes()
        results.append(result)
    print()
    for result in results:
        print(format_table(result))
        print()
    if save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"{'+'.join(names)}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(results, indent=1))
        print(f"results saved to {out}")
    return results


def machine_notes() -> dict:
    import platform

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "command": " ".join([f"python -m bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])}


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--repeat", type=int, default=2, help="runs per implementation (default 2)")
    ap.add_argument("--no-compare", action="store_true", help="skip comparing the outputs")
    ap.add_argument("--keep", action="store_true", help=f"keep run directories in {RUNS}")
    ap.add_argument("--impl", action="append", choices=["ours", "reference"],
                    help="run only this implementation (repeatable)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.harness",
                                 description="Benchmark ours vs the reference igneous.")
    ap.add_argument("workflows", nargs="*", help="workflow names (see --list)")
    ap.add_argument("--list", action="store_true", help="list the workflows and exit")
    add_common_args(ap)
    args = ap.parse_args(argv)
    workflows = load_workflows()
    if args.list or not args.workflows:
        for wf in workflows.values():
            print(f"{wf.name:<18} {wf.description}")
        return
    unknown = [w for w in args.workflows if w not in workflows]
    if unknown:
        ap.error(f"unknown workflow(s): {', '.join(unknown)}")
    run_and_report(args.workflows, repeat=args.repeat, compare=not args.no_compare,
                   keep=args.keep, impls=args.impl)


if __name__ == "__main__":
    main()
