"""``igneous mesh spatial-index`` and ``igneous skeleton spatial-index``:
create the index of existing files, or gather it into a database."""

from __future__ import annotations

import click

from igneous.cli.options import enqueue_or_run, fill_option, queue_option
from igneous.formats.spatial_index import INFO_KEYS  # (cheap: numpy is imported lazily there)


def spatial_index_group(kind: str) -> click.Group:
    """``spatial-index create|db`` for ``igneous mesh`` (kind "mesh") or ``igneous skeleton``."""
    if kind not in INFO_KEYS:
        raise ValueError(f"kind must be one of {sorted(INFO_KEYS)}")
    noun = "mesh" if kind == "mesh" else "skeleton"

    @click.group("spatial-index")
    def group() -> None:
        """Create or download the spatial index (labels by bounding box)."""

    @group.command("create")
    @click.argument("path")
    @queue_option
    @click.option("--shape", default="448,448,448", show_default=True,
                  help="Task shape in voxels (also the index's chunk size).")
    @click.option("--mip", default=0, show_default=True, type=int, help="Index at this mip.")
    @fill_option
    @click.pass_context
    def create(ctx: click.Context, path: str, queue: str | None, shape: str, mip: int,
               fill_missing: bool) -> None:
        from igneous.layers import parse_triple
        from igneous.task_creation.spatial_index import create_spatial_index_tasks

        plan = create_spatial_index_tasks(path, kind, mip, parse_triple(shape, "--shape"),
                                          fill_missing)
        enqueue_or_run(ctx, queue, [plan], what="indexing tasks")

    @group.command("db")
    @click.argument("path")
    @click.argument("database")
    @click.option("--progress", is_flag=True, help="Show progress bars.")
    @click.option("--allow-missing", is_flag=True, help="Skip missing index files.")
    def db(path: str, database: str, progress: bool, allow_missing: bool) -> None:
        """Gather the spatial index into a database: sqlite://FILE.db (or FILE.db), mysql://..."""
        from igneous.errors import UserError
        from igneous.formats.spatial_index import to_sqlite
        from igneous.layers import LayerInfo

        layer = LayerInfo(path)
        key = INFO_KEYS[kind]
        sub = layer.info.get(key)
        if not sub:
            raise UserError(f"{layer.cloudpath} has no {key} directory in its info")
        to_sqlite(f"{layer.cloudpath}/{sub}", database, allow_missing=allow_missing,
                  progress=progress)
        click.echo(f"Wrote the {noun} spatial index of {layer.cloudpath} to {database}", err=True)

    create.help = f"Create a spatial index for existing {noun} files without recomputing them."
    return group


mesh_spatial_index = spatial_index_group("mesh")
skeleton_spatial_index = spatial_index_group("skeleton")
