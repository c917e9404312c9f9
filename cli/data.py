"""``augment data list|export``."""

from __future__ import annotations

from pathlib import Path

import click

from cli.options import LazyChoice


def _dataset_names() -> list[str]:
    from augmentor.datasets import list_datasets

    return list_datasets()


@click.group()
def data() -> None:
    """The bundled and offline datasets."""


@data.command("list")
def list_datasets() -> None:
    """List the datasets."""
    from augmentor.datasets import DATASETS

    for name, entry in DATASETS.items():
        click.echo(f"{name:22s} {entry.description}")


@data.command("export")
@click.argument("name", type=LazyChoice(_dataset_names))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
def export(name: str, dst: Path, split: str) -> None:
    """Write dataset NAME as an image folder DST/<class>/*.png."""
    from augmentor.datasets import export_dataset
    from cli.errors import fail

    try:
        n = export_dataset(name, dst, split)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    click.echo(f"wrote {n} images to {dst}")
