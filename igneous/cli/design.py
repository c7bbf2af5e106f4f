"""``igneous design ...``: calculators for choosing task shapes."""

from __future__ import annotations

import click


@click.group("design")
def design_group():
    """Calculators: memory a task shape needs, best shape under a memory limit."""
