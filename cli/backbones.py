"""``augment backbones``."""

from __future__ import annotations

import click


@click.command()
def backbones() -> None:
    """List the registered backbones (timm/<model> and torchvision/<model> also work)."""
    from transfer.backbones import BACKBONES

    for name in BACKBONES.list():
        click.echo(f"{name:20s} {BACKBONES.describe(name)}")
    click.echo("timm/<model>         any timm model (weights: --weights, cache or download)")
    click.echo("torchvision/<model>  any torchvision model (likewise)")
