"""Planning at petavoxel scale: ours vs the reference, on every queue backend.

A 100,000^3-voxel layer at 4x4x40 nm exists only as an info file (no chunks):
planning never reads chunks, so this measures what a lab planning a real
petavoxel job waits for. For each planner (downsample, xfer, mesh forge,
skeleton forge, ccl faces, voxel counts) and each backend (local queue,
PostgreSQL, SQS on moto) it runs our CLI and records wall time, peak memory
of the process tree, tasks planned and the queue's size afterwards; the
reference runs the same commands into its own FileQueue under a time limit
(it inserts ~700 tasks/s, so it rarely finishes: the table says how far it got).

    python -m bench.scale                       # every planner, every backend, reference too
    python -m bench.scale --backend local --no-reference
    python -m bench.scale --reference-timeout 120

Servers (PostgreSQL from Debian's binaries, moto_server) are started on
127.0.0.1 and stopped by PID, as in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from bench.harness import BENCH, RESULTS, Impl, measure, ours, reference

VOXELS = 100_000
IMAGE_INFO = {
    "type": "image", "data_type": "uint8", "num_channels": 1,
    "scales": [{"key": "4_4_40", "resolution": [4, 4, 40], "voxel_offset": [0, 0, 0],
                "size": [VOXELS] * 3, "chunk_sizes": [[128, 128, 64]], "encoding": "raw"}],
}
SEG_INFO = {
    "type": "segmentation", "data_type": "uint64", "num_channels": 1,
    "scales": [{"key": "4_4_40", "resolution": [4, 4, 40], "voxel_offset": [0, 0, 0],
                "size": [VOXELS] * 3, "chunk_sizes": [[128, 128, 64]],
                "encoding": "compressed_segmentation",
                "compressed_segmentation_block_size": [8, 8, 8]}],
}
# name -> (layer, command template); {src} {dest} {queue} filled in per run
PLANNERS = {
    "downsample": ("image", "image downsample {src} --mip 0 --num-mips 1 --queue {queue}"),
    "xfer": ("image", "image xfer {src} {dest} --chunk-size 128,128,64 --queue {queue}"),
    "mesh forge": ("seg", "mesh forge {src} --queue {queue}"),
    "skeleton forge": ("seg", "skeleton forge {src} --queue {queue}"),
    "ccl faces": ("seg", "image ccl faces {src} --queue {queue}"),
    "voxels count": ("seg", "image voxels count {src} --queue {queue}"),
}
EXPANDED = re.compile(r"expand them into ([\d,]+)")
INSERTED = re.compile(r"Inserted (\d+)")


def make_layers(root: Path) -> dict[str, Path]:
    out = {}
    for name, info in (("image", IMAGE_INFO), ("seg", SEG_INFO)):
        d = root / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        (d / "info").write_text(json.dumps(info))
        out[name] = d
    return out


def tasks_planned(text: str) -> int | None:
    m = EXPANDED.search(text) or INSERTED.search(text)
    return int(m.group(1).replace(",", "")) if m else None


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def queue_size(spec: str, path: Path | None) -> str:
    """Bytes on disk (local), table bytes (PostgreSQL) or messages (SQS)."""
    if path is not None:
        return f"{dir_size(path) / 1e6:.1f} MB"
    if spec.startswith("postgresql"):
        import psycopg

        with psycopg.connect(spec.split("?", 1)[0]) as conn:
            (n,) = conn.execute("SELECT pg_total_relation_size('igneous_tasks')").fetchone()
        return f"{n / 1e6:.1f} MB"
    import boto3

    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=spec[len("sqs://"):])["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return f"{attrs['Attributes']['ApproximateNumberOfMessages']} messages"


def purge(spec: str) -> None:
    from igneous.queues import open_queue

    q = open_queue(spec)
    q.purge()
    q.close()


def run_ours(impl: Impl, planner: str, layers: dict[str, Path], work: Path,
             queue: str, qpath: Path | None) -> dict:
    kind, template = PLANNERS[planner]
    src = work / f"src-{kind}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(layers[kind], src)  # planners add scales / sub-infos
    dest = work / "dest"
    shutil.rmtree(dest, ignore_errors=True)
    cmd = f"{impl.igneous} " + template.format(src=f"file://{src}", dest=f"file://{dest}",
                                               queue=queue)
    log_path = work / "logs" / "ours.log"
    log_path.unlink(missing_ok=True)  # measure() appends
    sample = measure(cmd, impl=impl, cwd=work, log=log_path, timeout=600)
    log = log_path.read_text(errors="replace")
    row = dict(planner=planner, wall=sample.wall, peak_mb=sample.peak_tree_rss / 1e6,
               ok=sample.returncode == 0, tasks=tasks_planned(log), queue=queue_size(queue, qpath))
    purge(queue)
    return row


def run_reference(impl: Impl, planner: str, layers: dict[str, Path], work: Path,
                  timeout: float) -> dict:
    kind, template = PLANNERS[planner]
    src = work / f"ref-src-{kind}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(layers[kind], src)
    qdir, dest = work / "ref-queue", work / "ref-dest"
    for d in (qdir, dest):
        shutil.rmtree(d, ignore_errors=True)
    cmd = f"{impl.igneous} " + template.format(src=f"file://{src}", dest=f"file://{dest}",
                                               queue=impl.queue_url(qdir))
    sample = measure(cmd, impl=impl, cwd=work, log=work / "logs" / "reference.log",
                     timeout=timeout)
    queued = sum(1 for _ in (qdir / "queue").iterdir()) if (qdir / "queue").is_dir() else 0
    return dict(planner=planner, wall=sample.wall, peak_mb=sample.peak_tree_rss / 1e6,
                finished=not sample.timed_out and sample.returncode == 0, inserted=queued,
                queue=f"{dir_size(qdir) / 1e6:.1f} MB" if qdir.exists() else "-")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", action="append", choices=["local", "postgresql", "sqs"])
    ap.add_argument("--planner", action="append", choices=sorted(PLANNERS))
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--reference-timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    backends = args.backend or ["local", "postgresql", "sqs"]
    planners = args.planner or list(PLANNERS)
    work = BENCH / "scale"
    work.mkdir(parents=True, exist_ok=True)
    layers = make_layers(work / "layers")
    impl = ours()
    rows: list[dict] = []
    with ExitStack() as servers:
        specs: dict[str, tuple[str, Path | None]] = {}
        if "local" in backends:
            specs["local"] = (str(work / "queue"), work / "queue")
        if "postgresql" in backends:
            from tests.pg_server import _server_user, find_bindir, running_postgres

            bindir = find_bindir()
            if bindir is None:
                raise SystemExit("PostgreSQL binaries not found: apt-get install postgresql")
            dsn = servers.enter_context(running_postgres(bindir, _server_user()))
            specs["postgresql"] = (f"{dsn}?queue=scale", None)
        if "sqs" in backends:
            from tests.conftest import running_moto

            url = servers.enter_context(running_moto(work / "moto.log"))
            os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench",
                              AWS_SECRET_ACCESS_KEY="bench", AWS_SESSION_TOKEN="bench",
                              AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
            specs["sqs"] = ("sqs://igneous-bench-scale", None)
        for backend, (spec, qpath) in specs.items():
            for planner in planners:
                if qpath is not None:
                    shutil.rmtree(qpath, ignore_errors=True)
                t0 = time.monotonic()
                row = run_ours(impl, planner, layers, work, spec, qpath)
                row.update(impl="ours", backend=backend)
                rows.append(row)
                print(f"ours {backend:<10} {planner:<15} {row['wall']:7.2f} s "
                      f"{row['peak_mb']:6.0f} MB  {row['tasks'] or 0:>12,} tasks  "
                      f"queue {row['queue']}  ({time.monotonic() - t0:.0f} s)", flush=True)
    if not args.no_reference:
        ref = reference()
        for planner in planners:
            row = run_reference(ref, planner, layers, work, args.reference_timeout)
            row.update(impl="reference", backend="fq")
            rows.append(row)
            state = "finished" if row["finished"] else f"cut off at {args.reference_timeout:.0f} s"
            print(f"reference fq {planner:<15} {row['wall']:7.2f} s {row['peak_mb']:6.0f} MB  "
                  f"{row['inserted']:>12,} tasks inserted ({state})  queue {row['queue']}",
                  flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scale-plans-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"raw results: {out}")


if __name__ == "__main__":
    main()
