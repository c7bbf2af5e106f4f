"""``igneous demo``: build sample volumes and run the main job on them."""

from __future__ import annotations

import os

import click

# The main job, as a pipeline file (docs/pipelines.md): pyramids for both
# layers, then meshes and skeletons of every label of the segmentation.
DEMO_PIPELINE = """\
source = "./segmentation"

[[steps]]
id = "image-pyramid"
step = "downsample"
layer_path = "./image"

[[steps]]
id = "segmentation-pyramid"
step = "downsample"

[[steps]]
step = "mesh-forge"

[[steps]]
step = "mesh-merge"

[[steps]]
step = "skeleton-forge"

[[steps]]
step = "skeleton-merge"
dust_threshold = 1000  # nm: the sample is small, the usual 4000 would drop most skeletons
"""


@click.command()
@click.argument("directory", default="./igneous-sample")
@click.option("--queue", default=None, help="Queue directory (default: DIRECTORY/queue).")
@click.option("--size", default="default", show_default=True, type=click.Choice(["small", "default"]),
              help="small: a 128x128x16 image and a 96x96x48 segmentation cutout (seconds).")
@click.pass_context
def demo(ctx, directory, queue, size):
    """Make a sample image and segmentation under DIRECTORY and run the main
    job on them through a durable local queue: downsample both, mesh and
    skeletonize every label. Prints where the results are."""
    from igneous.layers import load_layer
    from igneous.pipeline import enqueue, load_pipeline
    from igneous.sample import make_samples
    from igneous.submit import drain, fail_if_dead

    directory = os.path.abspath(directory)
    queue = queue or os.path.join(directory, "queue")
    click.echo(f"Writing sample layers under {directory} ...", err=True)
    shapes = {"image_shape": (128, 128, 16), "seg_cutout": (96, 96, 48)} if size == "small" else {}
    layers = make_samples(directory, **shapes)
    pipeline_file = os.path.join(directory, "pipeline.toml")
    with open(pipeline_file, "w") as f:
        f.write(DEMO_PIPELINE)
    pipeline = load_pipeline(pipeline_file)
    enqueue(pipeline, queue)
    click.echo(f"Running {', '.join(s.id for s in pipeline.steps)} with "
               f"{ctx.obj['parallel']} worker(s) ...", err=True)
    drained = drain(queue, parallel=ctx.obj["parallel"])
    click.echo(f"Executed {drained.result.executed} tasks ({drained.dead} dead-lettered).",
               err=True)
    fail_if_dead(drained, queue, rerun=f"igneous execute {queue}")
    seg = load_layer(layers["segmentation"]).info
    for name in ("image", "segmentation"):
        info = load_layer(layers[name]).info
        click.echo(f"{name}: {layers[name]}  ({len(info['scales'])} mips, {info['data_type']})")
    click.echo(f"meshes: {layers['segmentation']}/{seg.get('mesh', 'mesh')}")
    click.echo(f"skeletons: {layers['segmentation']}/{seg.get('skeletons', 'skeletons')}")
    click.echo(f"segmentation source: {layers['segmentation_source']}")
    click.echo(f"pipeline: {pipeline_file}   queue: {queue}")
    click.echo(f"view: igneous view {layers['image']} {layers['segmentation']}")
