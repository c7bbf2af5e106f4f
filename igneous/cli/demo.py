"""``igneous demo``: build sample volumes and run the main job on them."""

from __future__ import annotations

import os

import click


@click.command()
@click.argument("directory", default="./igneous-sample")
@click.option("--queue", default=None, help="Queue directory (default: DIRECTORY/queue).")
@click.pass_context
def demo(ctx, directory, queue):
    """Make a sample image and segmentation under DIRECTORY, queue their
    downsampling in a durable local queue, run workers, print where it is."""
    from igneous.queues import open_queue
    from igneous.sample import make_samples
    from igneous.task_creation.image import plan_downsample
    from igneous.worker import WorkerOptions, run_workers

    directory = os.path.abspath(directory)
    queue = queue or os.path.join(directory, "queue")
    click.echo(f"Writing sample layers under {directory} ...", err=True)
    layers = make_samples(directory)
    q = open_queue(queue, create=True)
    for name in ("image", "segmentation"):
        for i, plan in enumerate(plan_downsample(layers[name], 0, None)):
            q.insert(plan, stage=i)
    result = run_workers(queue, WorkerOptions(exit_on_empty=True, quiet=True), parallel=ctx.obj["parallel"])
    c = q.counts()
    click.echo(f"Executed {result.executed} tasks ({c.dead} dead-lettered).", err=True)
    from igneous.layers import load_layer

    for name in ("image", "segmentation"):
        info = load_layer(layers[name]).info
        click.echo(f"{name}: {layers[name]}  ({len(info['scales'])} mips, {info['data_type']})")
    click.echo(f"segmentation source: {layers['segmentation_source']}")
    click.echo(f"queue: {q.url}   view with Neuroglancer: precomputed://{layers['image']}")
