"""Storage requests per workflow on S3, ours vs the reference, counted at the endpoint.

Both implementations run the same commands on the same layers, copied into a
fresh prefix of one bucket on moto_server for every run; every request goes
through the loopback proxy of tests/fault_proxy.py, which counts them in the
classes S3 bills (read: GET/HEAD, write: PUT/POST, list, delete). The
table gives, per workflow and step, each side's counts and the ratio of
totals (ours / reference; at most 1 is the goal).

    python -m bench.requests                  # every workflow
    python -m bench.requests --only mesh xfer

bench/latency.py runs the same workflows with a delay added per request.
Servers are started on 127.0.0.1 and stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import INPUTS, ROOT, Impl, measure, ours, reference, save_results

BUCKET = "igneous-bench"
EXECUTE = "{igneous} -p 2 execute -x -q {queue}"
# name -> (input layer, steps); {src} {dest} {queue} {counts} are filled in per run
WORKFLOWS: dict[str, tuple[str, list[str]]] = {
    "downsample": ("image", ["{igneous} image downsample {src} --mip 0 --num-mips 2 "
                             "--queue {queue}", EXECUTE]),
    "xfer": ("image", ["{igneous} image xfer {src} {dest} --chunk-size 64,64,64 --max-mips 0 "
                       "--queue {queue}", EXECUTE]),
    "mesh": ("seg", ["{igneous} mesh forge {src} --queue {queue}", EXECUTE,
                     "{igneous} mesh merge {src} --queue {queue}", EXECUTE]),
    "skeleton": ("seg", ["{igneous} skeleton forge {src} --queue {queue}", EXECUTE,
                         "{igneous} skeleton merge {src} --queue {queue}", EXECUTE]),
    "ccl": ("seg", ["{igneous} -p 2 image ccl auto {src} {dest} --queue {queue}"]),
    "voxels": ("seg", ["{igneous} image voxels count {src} --queue {queue}", EXECUTE,
                       "{igneous} image voxels sum {src} -o {counts}"]),
}
# input layers: a crop of bench.inputs' layer, chunked as there
LAYERS = {"image": ("image", (512, 512, 64)), "seg": ("seg", (256, 256, 128))}
CLASSES = ("read", "write", "list", "delete")


def ensure_layer(name: str) -> Path:
    """A local copy of the ``name`` input layer's crop (built once, in .bench/inputs)."""
    source, shape = LAYERS[name]
    path = INPUTS / f"s3bench_{name}_{'x'.join(map(str, shape))}"
    if (path / ".complete").exists():
        return path
    from cloudvolume import CloudVolume

    from bench import inputs

    src = CloudVolume(f"file://{inputs.ensure(source)}", progress=False)
    data = src[0:shape[0], 0:shape[1], 0:shape[2]]
    info = CloudVolume.create_new_info(1, src.layer_type, src.dtype, "raw", list(src.resolution),
                                       [0, 0, 0], list(shape), chunk_size=list(src.chunk_size))
    dest = CloudVolume(f"file://{path}", info=info, progress=False, compress="gzip")
    dest.commit_info()
    dest[:, :, :] = data
    (path / ".complete").touch()
    return path


# -- the servers and the environment -------------------------------------------------

@dataclass
class Endpoint:
    """moto_server behind a FaultProxy; this process's environment points at the proxy."""

    moto: str
    proxy: object  # tests.fault_proxy.FaultProxy

    def counts(self) -> dict:
        return self.proxy.counts()  # type: ignore[attr-defined]


@contextmanager
def s3_endpoint(work: Path, latency: float = 0.0) -> Iterator[Endpoint]:
    """Start moto and the proxy; set the AWS / cloud-files variables every
    command inherits (fake credentials, no real AWS configuration)."""
    import boto3

    from tests.conftest import running_moto
    from tests.fault_proxy import FaultProxy

    with ExitStack() as stack:
        moto = stack.enter_context(running_moto(work / "moto.log"))
        proxy = stack.enter_context(FaultProxy(moto, flavor="s3", latency=latency))
        home = work / "aws-home"
        (home / "cloudfiles").mkdir(parents=True, exist_ok=True)
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": proxy.url, "AWS_CONFIG_FILE": str(home / "config"),
               "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
               "AWS_EC2_METADATA_DISABLED": "true", "CLOUD_FILES_DIR": str(home / "cloudfiles"),
               "CLOUD_VOLUME_DIR": str(home / "cloudvolume")}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        stack.callback(restore_environment, saved)
        boto3.client("s3", endpoint_url=moto).create_bucket(Bucket=BUCKET)
        yield Endpoint(moto, proxy)


def restore_environment(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def upload(local: Path, url: str) -> None:
    """Every object of a local layer, as stored (compression kept), to ``url``."""
    from igneous.storage import open_store

    src, dest = open_store(str(local)), open_store(url)
    keys = [k for k in src.list() if not k.startswith(".")]
    dest.put_stored_many((k, s) for k, s in src.get_stored_many(keys) if s is not None)


# -- running -----------------------------------------------------------------------

@dataclass
class StepResult:
    command: str
    wall: float
    cpu: float
    requests: dict  # class -> count

    @property
    def total(self) -> int:
        return sum(self.requests[c] for c in CLASSES)


def run_case(endpoint: Endpoint, layer: str, steps: list[str], impl: Impl, work: Path,
             tag: str) -> list[StepResult]:
    """Run ``steps`` with ``impl`` on a fresh copy of input ``layer`` below
    ``s3://BUCKET/TAG``; the requests each step made, its wall and CPU time."""
    root = f"s3://{BUCKET}/{tag}"
    upload(ensure_layer(layer), f"{root}/src")
    run_dir = work / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = {"src": f"{root}/src", "dest": f"{root}/dest",
           "queue": impl.queue_url(run_dir / "queue"), "counts": run_dir / "counts.im"}
    out = []
    for i, template in enumerate(steps):
        command = template.format(igneous=impl.igneous,
                                  **{k: shlex.quote(str(v)) for k, v in ctx.items()})
        endpoint.proxy.reset_counts()  # type: ignore[attr-defined]
        sample = measure(command, impl=impl, cwd=run_dir, log=run_dir / "logs" / f"{i}.log",
                         timeout=1800)
        if sample.returncode != 0 or sample.timed_out:
            raise RuntimeError(f"{impl.name}: `{command}` failed; see {run_dir / 'logs'}")
        counts = endpoint.counts()
        out.append(StepResult(template.split("{queue}")[0].replace("{igneous} ", "").strip(),
                              sample.wall, sample.cpu, {c: counts[c] for c in CLASSES}))
    return out


def compare_requests(names: list[str], impls: list[Impl]) -> dict:
    results: dict = {"workflows": {}, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="igneous-requests-") as tmp:
        work = Path(tmp)
        with s3_endpoint(work) as endpoint:
            for name in names:
                results["workflows"][name] = {}
                for impl in impls:
                    steps = run_case(endpoint, *WORKFLOWS[name], impl, work,
                                     f"{impl.name}-{name}")
                    results["workflows"][name][impl.name] = [s.__dict__ | {"total": s.total}
                                                            for s in steps]
                    print(f"[{name}] {impl.name}: " + ", ".join(
                        f"{s.command.split()[0:3]} {s.requests}" for s in steps), flush=True)
    return results


def format_table(results: dict) -> str:
    lines = ["| workflow | step | ours (read/write/list/delete) | reference | ours / ref |",
             "|---|---|---|---|---|"]
    for name, sides in results["workflows"].items():
        mine, ref = sides.get("ours", []), sides.get("reference", [])
        for i in range(max(len(mine), len(ref))):
            a = mine[i] if i < len(mine) else None
            b = ref[i] if i < len(ref) else None
            step = (a or b)["command"]
            lines.append(f"| {name} | `{step}` | {fmt(a)} | {fmt(b)} | |")
        ta, tb = (sum(s["total"] for s in side) for side in (mine, ref))
        ratio = f"{ta / tb:.2f}" if tb else "-"
        lines.append(f"| **{name}** | total | **{ta}** | **{tb}** | **{ratio}** |")
    return "\n".join(lines)


def fmt(step: dict | None) -> str:
    if step is None:
        return "-"
    r = step["requests"]
    return f"{step['total']} ({r['read']}/{r['write']}/{r['list']}/{r['delete']})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.requests", description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(WORKFLOWS), help="these workflows only")
    ap.add_argument("--impl", nargs="+", choices=["ours", "reference"],
                    default=["ours", "reference"])
    args = ap.parse_args(argv)
    impls = [{"ours": ours, "reference": reference}[n]() for n in args.impl]
    results = compare_requests(args.only or list(WORKFLOWS), impls)
    out = save_results("requests.json", results, keep="workflows")  # --only runs add up
    print(format_table(results))
    print(f"\nresults in {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
