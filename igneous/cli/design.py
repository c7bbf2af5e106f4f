"""``igneous design ...``: calculators for choosing task shapes."""

from __future__ import annotations

import click

from igneous.cli.options import MemorySize


@click.group("design")
def design_group():
    """Calculators: memory a task shape needs, best shape under a memory limit."""


def _info(path: str, mip: int) -> dict:
    from igneous.layers import load_layer

    return load_layer(path, mip).info


@design_group.command("ds-shape")
@click.argument("layer")
@click.option("--shape", required=True, help="Task shape, e.g. 1024,1024,64.")
@click.option("--mip", default=0, show_default=True)
@click.option("--factor", default="2,2,1", show_default=True)
def ds_shape(layer, shape, mip, factor):
    """Memory one downsample/transfer task of --shape needs (image + all its mips)."""
    from igneous.design import human_bytes, shape_memory
    from igneous.layers import parse_triple

    need, _ = shape_memory(_info(layer, mip), mip, parse_triple(shape, "--shape"),
                           parse_triple(factor, "--factor"))
    click.echo(human_bytes(need))


@design_group.command("ds-memory")
@click.argument("layer")
@click.argument("memory", type=MemorySize())
@click.option("--mip", default=0, show_default=True)
@click.option("--factor", default="2,2,1", show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="Explain the result.")
@click.option("--max-mips", default=32, show_default=True, help="Most downsamples to consider.")
def ds_memory(layer, memory, mip, factor, verbose, max_mips):
    """Largest task shape (and its downsample count) that fits MEMORY bytes."""
    import numpy as np

    from igneous.design import best_shape, human_bytes
    from igneous.grid import chunk_size
    from igneous.layers import parse_triple

    info = _info(layer, mip)
    f = parse_triple(factor, "--factor")
    shape, k, need = best_shape(info, mip, memory, f, max_mips)
    text = ",".join(str(int(s)) for s in shape)
    if not verbose:
        click.echo(text)
        return
    chunk = chunk_size(info, mip)
    click.echo(f"Data Width: {np.dtype(info['data_type']).itemsize * int(info.get('num_channels', 1))}")
    click.echo(f"Factor: {tuple(int(x) for x in f)}")
    click.echo(f"Chunk Size: {', '.join(str(int(c)) for c in chunk)}")
    click.echo(f"Memory Limit: {human_bytes(memory)}")
    click.echo("-----")
    click.echo(f"Optimized Shape: {text}")
    click.echo(f"Downsamples: {k}")
    click.echo(f"Memory Used*: {human_bytes(need)}")
    click.echo("")
    click.echo("*memory used is for retaining the image and all downsamples.\n"
               "Additional costs may be incurred from processing.")


@design_group.command()
@click.argument("layer")
@click.option("--mip", default=0, show_default=True)
def bounds(layer, mip):
    """Voxel bounds of LAYER at --mip (start inclusive, stop exclusive) and physical extent."""
    from igneous.grid import resolution, scale_bounds

    info = _info(layer, mip)
    start, stop = scale_bounds(info, mip)
    res = resolution(info, mip)
    fmt = lambda v: ",".join(str(int(x)) for x in v)  # noqa: E731
    click.echo(f"Bbox({fmt(start)}, {fmt(stop)})  size {fmt(stop - start)}  mip {mip}")
    click.echo(f"physical: {fmt(start * res)} - {fmt(stop * res)} nm  resolution {','.join(f'{r:g}' for r in res)}")
