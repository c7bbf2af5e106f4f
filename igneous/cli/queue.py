"""``igneous queue ...``: inspect and manage a task queue."""

from __future__ import annotations

import json
import time

import click


def _open(queue: str, region: str | None = None, create: bool = False):
    from igneous.queues import open_queue

    return open_queue(queue, create=create, region=region)


region_option = click.option("--aws-region", default=None, envvar="AWS_DEFAULT_REGION",
                             help="Region of an sqs:// queue.")


@click.group("queue")
def queue_group():
    """Inspect and manage task queues."""


def _eta(remaining: int, rate: float | None) -> str:
    if not remaining:
        return "done"
    if not rate:
        return "unknown"
    secs = int(remaining / rate)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _stage_rows(stages: dict, labels: dict) -> list[tuple]:
    """(stage, step label, pending, leased, done|running|waiting) in stage order;
    labelled (pipeline) stages stay listed as done once they are empty."""
    active = min(stages) if stages else None
    rows = []
    for stage in sorted(set(stages) | set(labels)):
        p, x = stages.get(stage, (0, 0))
        if stage not in stages:
            state = "done" if active is None or stage < active else "planned later"
        else:
            state = "running" if stage == active else "waiting"
        rows.append((stage, labels.get(stage, ""), p, x, state))
    return rows


@queue_group.command()
@click.argument("queue")
@region_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--dead", "show_dead", default=3, show_default=True,
              help="How many dead-lettered tasks to show with their last error.")
@click.option("--eta", "eta_sec", default=0.0, show_default=True, type=float,
              help="Watch the queue this many seconds and estimate the rate (and ETA) from what "
              "left it meanwhile, instead of from the completions of the last minute.")
@click.option("--prices", "prices_file", default=None, metavar="FILE",
              help="A TOML price table overriding the shipped list prices (also $IGNEOUS_PRICES; "
              "docs/cost.md).")
@click.option("--report", "report_file", default=None, metavar="FILE",
              help="Also write the run report (JSON: usage by task, price estimate) to FILE.")
def status(queue, aws_region, as_json, show_dead, eta_sec, prices_file, report_file):
    """Pending, leased, completed and dead-lettered tasks, rate and ETA; what
    the run used so far (storage requests by class, bytes, CPU-seconds) and an
    estimated price at list prices."""
    from igneous import cost

    prices = cost.load_prices(prices_file)
    q = _open(queue, aws_region)
    usage = q.usage()
    run = cost.report(usage, prices, queue=q.url)
    if report_file:
        with open(report_file, "w") as f:
            json.dump(run, f, indent=1)
    c = q.counts()
    if eta_sec > 0:
        before = c.remaining
        time.sleep(eta_sec)
        c = q.counts()
        c.rate = max(before - c.remaining, 0) / eta_sec
    dead = q.dead_letters(show_dead) if c.dead else []
    rows = _stage_rows(c.stages, q.stage_labels())
    if as_json:
        click.echo(json.dumps({
            "queue": q.url, "pending": c.pending, "leased": c.leased, "completed": c.completed,
            "dead": c.dead, "inserted": c.inserted, "rate": c.rate,
            "stages": {str(k): {"pending": p, "leased": x, "state": state, "step": label}
                       for k, label, p, x, state in rows},
            "dead_letters": [{"payload": d.payload, "failures": d.failures, "error": d.error}
                             for d in dead],
            "usage": {k: run[k] for k in ("total", "by_task", "price_usd", "prices")},
        }))
        return
    click.echo(f"Queue:      {q.url}")
    click.echo(f"Pending:    {c.pending}")
    click.echo(f"Leased:     {c.leased}")
    click.echo(f"Completed:  {'n/a' if c.completed is None else c.completed}")
    click.echo(f"Dead:       {c.dead}")
    rate = f"{c.rate:.1f} tasks/s" if c.rate else "-"
    click.echo(f"Rate:       {rate} ({f'over {eta_sec:g} s' if eta_sec > 0 else 'last minute'})")
    click.echo(f"ETA:        {_eta(c.remaining, c.rate)}")
    if len(rows) > 1:
        for stage, label, p, x, state in rows:
            name = f" {label}" if label else ""
            click.echo(f"  stage {stage}{name}: {p} pending, {x} leased ({state})")
    for d in dead:
        click.echo(f"  dead ({d.failures} failures): {d.error}\n    task: {d.payload[:200]}")
    for line in cost.render(usage, prices):
        click.echo(line)


@queue_group.command()
@click.argument("queue")
@region_option
@click.option("--dead", is_flag=True, help="Also put dead-lettered tasks back, with fresh attempts.")
def release(queue, aws_region, dead):
    """Make every leased task available again (e.g. after workers were killed)."""
    q = _open(queue, aws_region)
    n = q.release_all()
    msg = f"Released {n} leased tasks."
    if dead:
        msg += f" Requeued {q.requeue_dead()} dead-lettered tasks."
    click.echo(msg)


@queue_group.command()
@click.argument("queue")
@region_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(queue, aws_region, yes):
    """Delete every task, dead letter and counter in QUEUE."""
    q = _open(queue, aws_region)
    if not yes and not click.confirm(f"Delete all tasks in {q.url}?", default=False):
        raise click.Abort()
    q.purge()
    click.echo(f"Purged {q.url}.")


@queue_group.command()
@click.argument("queue")
@region_option
@click.option("--poll", "--rate", "poll", default=2.0, show_default=True, help="Seconds between checks.")
@click.option("--timeout", default=None, type=float, help="Give up after this many seconds (exit 1).")
def wait(queue, aws_region, poll, timeout):
    """Block until nothing is pending or leased in QUEUE."""
    q = _open(queue, aws_region)
    start = time.monotonic()
    while not q.is_empty():
        if timeout is not None and time.monotonic() - start > timeout:
            raise click.ClickException(f"{q.url} still has tasks after {timeout:g} s")
        time.sleep(poll)
    c = q.counts()
    click.echo(f"{q.url} is empty ({c.dead} dead-lettered).")


class _StageMap:
    """Maps source stages to fresh stages after everything already in DEST."""

    def __init__(self, dest):
        self.dest = dest
        self.base = dest.next_stage()
        self.seen: dict[int, int] = {}

    def __call__(self, stage: int) -> int:
        if not self.dest.supports_stages:
            return 0
        return self.seen.setdefault(stage, self.base + len(self.seen))


def _refuse_flattening(s, d) -> None:
    """Several stages poured into a stage-less queue would run out of order."""
    if not d.supports_stages and len(s.counts().stages) > 1:
        raise click.ClickException(
            f"{s.url} holds several stages and {d.url} cannot keep them apart; "
            "let the earlier stages finish first, or use a local queue (a directory)"
        )


def _copy(src: str, dest: str, region: str | None) -> int:
    from itertools import groupby

    from igneous.submit import insert_stages

    s, d = _open(src, region), _open(dest, region, create=True)
    _refuse_flattening(s, d)
    to_stage = _StageMap(d)
    n = 0
    for stage, group in groupby(s.iter_pending(), key=lambda x: x[1]):
        n += insert_stages(d, [(payload for payload, _ in group)], first=to_stage(stage)) or 0
    return n


def _move(src: str, dest: str, region: str | None) -> int:
    """Lease from SRC, insert into DEST, delete from SRC: a crash mid-way
    duplicates at most one batch, never loses a task."""
    from itertools import groupby

    from igneous.submit import insert_stages

    s, d = _open(src, region), _open(dest, region, create=True)
    _refuse_flattening(s, d)
    to_stage = _StageMap(d)
    n = 0
    while True:
        leases = s.lease(1000, seconds=3600)
        if not leases:
            return n
        for stage, group in groupby(leases, key=lambda x: x.stage):
            insert_stages(d, [[x.payload for x in group]], first=to_stage(stage))
        s.delete(leases)
        n += len(leases)


@queue_group.command()
@click.argument("src")
@click.argument("dest")
@region_option
def cp(src, dest, aws_region):
    """Copy the waiting tasks of SRC into DEST (stages kept in order)."""
    click.echo(f"Copied {_copy(src, dest, aws_region)} tasks.")


@queue_group.command()
@click.argument("src")
@click.argument("dest")
@region_option
def mv(src, dest, aws_region):
    """Move the waiting tasks of SRC into DEST (tasks leased by running workers stay)."""
    click.echo(f"Moved {_move(src, dest, aws_region)} tasks.")


@queue_group.command()
@click.argument("queue")
@region_option
def rezero(queue, aws_region):
    """Reset the completed counter and rate of QUEUE."""
    _open(queue, aws_region).rezero()
    click.echo("Counters reset.")
