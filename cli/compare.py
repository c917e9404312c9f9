"""``augment compare DATA --out DIR``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from cli.finetune import build_config, finetune_options


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--repeats",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Repeated stratified splits.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.3,
    show_default=True,
    help="Share of each class held out in each split (without --test).",
)
@click.option(
    "--test",
    "test_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A fixed test folder (same classes): every run is tested on all of it and DATA "
    "only trains.",
)
@click.option(
    "--train-per-class",
    type=click.IntRange(min=1),
    default=None,
    help="With --test: training images drawn per class from DATA in each repeat [default: all].",
)
@finetune_options
def compare(
    data: Path,
    out: Path,
    repeats: int,
    test_fraction: float,
    test_dir: Path | None,
    train_per_class: int | None,
    **kw: Any,
) -> int:
    """Did augmentation help? Fine-tune on DATA without augmentation, with the classic
    augmentation (--preset/--pipeline) and, given --synthetic, with synthetic images too, on
    the same repeated splits; print accuracy ± 95% CI and the paired differences.

    Rerunning the same command reuses the finished runs in DIR.
    """
    from cli.errors import fail

    if not data.is_dir():
        raise click.BadParameter(f"{str(data)!r} is not a directory", param_hint="'DATA'")
    if test_dir is not None and not test_dir.is_dir():
        raise click.BadParameter(f"{str(test_dir)!r} is not a directory", param_hint="'--test'")
    if train_per_class is not None and test_dir is None:
        raise click.BadParameter("needs --test", param_hint="'--train-per-class'")
    try:
        config = build_config(**kw)
        configs = {
            "real only": replace(
                config, preset=None, pipeline=None, synthetic=None, mixup=0.0, cutmix=0.0
            ),
            "real + classic": replace(config, synthetic=None),
        }
        if config.preset is None and config.pipeline is None:
            raise click.UsageError("give the classic augmentation to test: --preset or --pipeline")
        if config.synthetic:
            configs["real + classic + synthetic"] = config
        from transfer.comparison import compare as run_compare

        def on_run(name: str, split: int, scores: dict[str, float]) -> None:
            click.echo(f"split {split}: {name}: accuracy {scores['accuracy']:.4f}", err=True)

        result = run_compare(
            data,
            configs,
            out,
            repeats,
            test_fraction,
            kw["seed"],
            on_run=on_run,
            test=test_dir,
            train_per_class=train_per_class,
        )
    except ValueError as e:
        fail(str(e))
    click.echo(result.table())
    click.echo(f"-> {out / 'comparison.md'}")
    return 0
