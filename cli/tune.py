"""``augment tune DATA --minutes M --out DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from cli.options import apply, network_options, refuse_inside
from transfer.config import TUNE_MIN_MINUTES, TuneConfig

D = TuneConfig.default  # every default below is the library's own


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The tuning directory.")
@click.option(
    "--minutes",
    type=click.FloatRange(min=TUNE_MIN_MINUTES),
    default=D("minutes"),
    show_default=True,
    help="Wall-time budget of the whole search.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=2),
    default=D("repeats"),
    show_default=True,
    help="Repeated stratified splits of DATA scoring every candidate.",
)
@click.option(
    "--views",
    type=click.IntRange(min=2),
    default=D("views"),
    show_default=True,
    help="Feature views per training image in the screening probe (clean + augmented).",
)
@apply(network_options(D))
@click.option(
    "--confirm-steps",
    type=click.IntRange(min=0),
    default=D("confirm_steps"),
    show_default=True,
    help="Steps of each confirming fine-tuning run of the default and the winner (0: none); "
    "they run only when the budget left holds two splits of both.",
)
@click.option("--seed", type=click.IntRange(min=0), default=D("seed"), show_default=True)
def tune(data: Path, out: Path, weights: Path | None, no_pretrained: bool, **kw: object) -> int:
    """Find the classic augmentation that suits the image folder DATA, within --minutes.

    Every preset, "no augmentation" and variations of the default (flips, rotation, colour,
    crop scale, erasing, RandAugment magnitude) are scored by a linear probe on frozen
    features over repeated splits of DATA only; the best few are confirmed by short
    fine-tuning runs when the budget allows. Writes tune.md (every candidate with its paired
    difference to "none" and to the default, 95% CIs), tune.json and pipeline.yaml for
    `augment finetune --pipeline`. Rerunning with the same DATA and options reuses the
    finished candidates. Tune with the --backbone and --image-size you will fine-tune with.
    """
    from cli.errors import fail, list_skipped
    from transfer.images import load_folder
    from transfer.tuning import summary_line
    from transfer.tuning import tune as run_tune

    if not data.is_dir():
        raise click.BadParameter(f"{str(data)!r} is not a directory", param_hint="'DATA'")
    refuse_inside(out, "'--out'", DATA=data)
    try:
        if weights is not None and no_pretrained:
            raise click.UsageError("--weights and --no-pretrained are mutually exclusive")
        config = TuneConfig(
            weights=str(weights) if weights else None,
            pretrained=not no_pretrained,
            **kw,  # type: ignore[arg-type]
        )
        images = load_folder(data)
        result = run_tune(images, out, config, say=click.echo)
    except ValueError as e:
        fail(str(e))
    click.echo(summary_line(result))
    click.echo(f"test-time augmentation: --tta {result.tta}")
    for note in result.notes:
        click.echo(note)
    click.echo(
        f"{len(result.candidates)} candidates in {result.seconds / 60:.1f} min -> "
        f"{out / 'tune.md'}; use: augment finetune DATA "
        f"{result.finetune_flags(str(out / 'pipeline.yaml'))}"
    )
    return list_skipped(images.skipped)
