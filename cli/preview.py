"""``augment preview SRC -o grid.png``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.options import pipeline_options, resolve_pipeline


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@pipeline_options()
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("preview.png"),
    show_default=True,
    help="The PNG to write.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Source images (round-robin over the classes).",
)
@click.option(
    "--columns",
    type=click.IntRange(min=2),
    default=6,
    show_default=True,
    help="Original plus augmented versions per row.",
)
def preview(
    src: Path,
    preset: str | None,
    pipeline_file: Path | None,
    seed: int | None,
    output: Path,
    rows: int,
    columns: int,
) -> None:
    """Write a grid of originals (left column) beside augmented versions, to look at a
    pipeline before generating thousands of images."""
    from cli.errors import fail

    if not src.exists():
        raise click.BadParameter(f"{str(src)!r} does not exist", param_hint="'SRC'")
    pipe = resolve_pipeline(preset, pipeline_file, seed)
    from augmentor.folders import preview_grid

    try:
        info = preview_grid(src, pipe, output, rows=rows, columns=columns)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    click.echo(f"wrote {output} ({info['rows']} rows x {info['columns']} columns)")
    from cli.errors import list_skipped

    code = list_skipped(info["skipped"].items())
    if code:
        sys.exit(code)
