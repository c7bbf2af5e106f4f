"""``igneous image ...``: create, downsample, transfer and delete image layers."""

from __future__ import annotations

import click


@click.group("image")
def image_group():
    """Operations on image and segmentation layers."""
