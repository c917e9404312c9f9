"""``augment ops``."""

from __future__ import annotations

import click


@click.command()
def ops() -> None:
    """List the ops, containers and policies (usable in pipeline files) and the presets."""
    import inspect

    from augmentor import list_presets
    from augmentor.registry import OPS

    for name, cls in OPS.items():
        doc = (inspect.getdoc(cls) or "").split("\n")[0]
        click.echo(f"{name:20s} {doc}")
    click.echo(f"\npresets: {', '.join(list_presets())}")
