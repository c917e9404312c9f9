"""``augment data list|export``."""

from __future__ import annotations

from pathlib import Path

import click

DATASET_NAMES = ["fashion-mnist", "fashion-mnist-subset", "lfw", "textures"]


@click.group()
def data() -> None:
    """The bundled and offline datasets."""


@data.command("list")
def list_datasets() -> None:
    """List the datasets."""
    from augmentor.datasets import DATASETS

    for name, text in sorted(DATASETS.items()):
        click.echo(f"{name:22s} {text}")


@data.command("export")
@click.argument("name", type=click.Choice(DATASET_NAMES))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
def export(name: str, dst: Path, split: str) -> None:
    """Write dataset NAME as an image folder DST/<class>/*.png."""
    from augmentor.datasets import export_dataset
    from cli.main import fail

    try:
        n = export_dataset(name, dst, split)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    click.echo(f"wrote {n} images to {dst}")
