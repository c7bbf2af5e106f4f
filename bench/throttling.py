"""Sustained throttling: xfer + downsample on GCS and S3, clean vs every N-th request 503.

For each cloud (the GCS emulator, moto), in one invocation: the same image
layer is copied into ``clean/`` and ``throttled/`` of one bucket; the
workflow runs through the CLI (planners, ``-p 2`` workers) in ``clean/``
with the fault proxy (tests/fault_proxy.py) passing everything, then in
``throttled/`` with every N-th request answered 503 SlowDown for the whole
run. Reported per run: wall and CPU seconds (the command trees), requests
and faults at the proxy, retries in the queues' run totals, dead tasks, and
whether every output object is byte-identical to the clean run's.

    python -m bench.throttling                       # 256x256x64, every 5th, gcs and s3
    python -m bench.throttling --every 3 --shape 128,128,32 --only gcs

Servers are started on 127.0.0.1 and stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.harness import measure, ours, save_results
from bench.requests import BUCKET as S3_BUCKET
from bench.requests import Endpoint, restore_environment, s3_endpoint, upload

BUCKET = "throttle-bench"  # on the GCS emulator; S3_BUCKET is made by s3_endpoint
STEPS = ["{igneous} image xfer {root}/img {root}/out --chunk-size 16,16,8 --shape 32,32,16 "
         "--skip-downsample --queue {queue}/xfer",
         "{igneous} -p 2 execute -x -q {queue}/xfer",
         "{igneous} image downsample {root}/out --num-mips 2 --queue {queue}/down",
         "{igneous} -p 2 execute -x -q {queue}/down"]


@contextmanager
def gcs_endpoint(work: Path) -> Iterator[Endpoint]:
    """The GCS emulator (tests/gcs_emulator.py) behind the proxy; this
    process's environment points every GCS client at the proxy."""
    import sys

    from tests.fault_proxy import FaultProxy
    from tests.servers import answers_at, background_server, free_port

    root = Path(__file__).resolve().parent.parent
    port = free_port()
    argv = [sys.executable, str(root / "tests" / "gcs_emulator.py"), str(port)]
    with ExitStack() as stack:
        emulator = stack.enter_context(background_server(
            argv, f"http://127.0.0.1:{port}", answers_at("/storage/v1/b"), work / "gcs.log",
            "gcp-storage-emulator"))
        proxy = stack.enter_context(FaultProxy(emulator, flavor="gcs"))
        home = work / "gcs-home"
        (home / "secrets").mkdir(parents=True, exist_ok=True)
        env = {"STORAGE_EMULATOR_HOST": proxy.url, "CLOUD_FILES_DIR": str(home),
               "CLOUD_VOLUME_DIR": str(home), "GOOGLE_APPLICATION_CREDENTIALS": None}
        saved = {k: os.environ.get(k) for k in env}
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stack.callback(restore_environment, saved)
        request = urllib.request.Request(
            f"{emulator}/storage/v1/b?project=bench", data=json.dumps({"name": BUCKET}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        yield Endpoint(emulator, proxy)


def queue_totals(queue: Path) -> tuple[int, int]:
    """(storage retries in the run totals, dead tasks) of a local queue."""
    from igneous.queues.local import LocalQueue

    with LocalQueue(str(queue), create=False) as q:
        retries = sum(fields.get("retries", 0) for fields in q.usage().values())
        return int(retries), q.counts().dead


def run(root: str, queue: Path, work: Path) -> dict:
    impl = ours()
    wall = cpu = 0.0
    for step in STEPS:
        command = step.format(igneous=impl.igneous, root=root, queue=queue)
        sample = measure(command, impl=impl, cwd=work, log=work / "commands.log")
        if sample.returncode != 0:
            raise SystemExit(f"failed ({sample.returncode}): {command}; see {work}/commands.log")
        wall += sample.wall
        cpu += sample.user + sample.sys
    retries = dead = 0
    for stage in ("xfer", "down"):
        r, d = queue_totals(queue / stage)
        retries, dead = retries + r, dead + d
    return {"wall_sec": round(wall, 1), "cpu_sec": round(cpu, 1), "retries": retries,
            "dead": dead}


def objects(url: str) -> dict:
    from igneous.storage import open_store

    store = open_store(url)
    return dict(store.get_stored_many(sorted(store.list())))


def bench_cloud(cloud: str, layer: Path, every: int, work: Path) -> dict:
    endpoint = gcs_endpoint if cloud == "gcs" else s3_endpoint
    work.mkdir(parents=True, exist_ok=True)
    with endpoint(work) as ep:
        proxy = ep.proxy
        bucket = f"gs://{BUCKET}" if cloud == "gcs" else f"s3://{S3_BUCKET}"
        out: dict = {}
        for name in ("clean", "throttled"):
            upload(layer, f"{bucket}/{name}/img")
        for name in ("clean", "throttled"):
            proxy.kinds = ("503",)
            if name == "throttled":
                proxy.arm(every=every, max_faults=10**9)
            proxy.reset_counts()
            out[name] = run(f"{bucket}/{name}", work / f"{cloud}-{name}-queue", work)
            counts = proxy.counts()
            proxy.disarm()
            out[name] |= {"requests": counts["requests"], "faults": counts["faults_total"]}
            print(cloud, name, out[name], flush=True)
        clean, throttled = objects(f"{bucket}/clean/out"), objects(f"{bucket}/throttled/out")
        out["objects"] = len(clean)
        out["identical"] = sorted(clean) == sorted(throttled) and all(
            clean[k] == throttled[k] for k in clean)
        print(cloud, "objects", out["objects"], "identical", out["identical"], flush=True)
        return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--shape", default="256,256,64")
    ap.add_argument("--only", nargs="*", choices=("gcs", "s3"), default=["gcs", "s3"])
    args = ap.parse_args(argv)

    from igneous.sample import smooth_image
    from tests.volumes import make_layer

    shape = tuple(int(v) for v in args.shape.split(","))
    results = {"every": args.every, "shape": shape, "load": os.getloadavg(), "clouds": {}}
    with tempfile.TemporaryDirectory(prefix="igneous-throttling-") as tmp:
        work = Path(tmp)
        layer = work / "img"
        make_layer(str(layer), smooth_image(shape, seed=4), chunk=(16, 16, 8))
        for cloud in args.only:
            results["clouds"][cloud] = bench_cloud(cloud, layer, args.every, work / cloud)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    print("saved", save_results("throttling.json", results))


if __name__ == "__main__":
    main()
