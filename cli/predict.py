"""``augment predict RUN IMAGE...``."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
def predict(run: Path, images: tuple[Path, ...], top_k: int, as_json: bool) -> int:
    """Classify IMAGES (any size and mode) with the TorchScript export of a fine-tuned RUN.

    Exit code 3: some images were unreadable (reported, the others classified).
    """
    from augmentor.io import ImageReadError, load_image
    from cli.errors import EXIT_SKIPPED, fail
    from transfer.export import Predictor

    try:
        predictor = Predictor(run)
    except ValueError as e:
        fail(str(e))
    failed = 0
    for path in images:
        try:
            top = predictor.predict(load_image(path), top_k=top_k)
        except (ImageReadError, FileNotFoundError, IsADirectoryError) as e:
            failed += 1
            if as_json:
                click.echo(json.dumps({"image": str(path), "error": str(e)}))
            else:
                click.echo(f"{path}: error: {e}", err=True)
            continue
        if as_json:
            click.echo(
                json.dumps(
                    {"image": str(path), "top": [{"class": c, "probability": p} for c, p in top]}
                )
            )
        else:
            click.echo(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    return EXIT_SKIPPED if failed else 0
