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
@click.option(
    "--arms",
    type=click.Choice(["pretrained", "scratch", "both"]),
    default="pretrained",
    show_default=True,
    help="pretrained: the --backbone recipe; scratch: the small CNN trained from scratch on "
    "the same splits (where synthetic images are likeliest to help); both.",
)
@finetune_options
def compare(
    data: Path,
    out: Path,
    repeats: int,
    test_fraction: float,
    test_dir: Path | None,
    train_per_class: int | None,
    arms: str,
    **kw: Any,
) -> int:
    """Did augmentation help? Fine-tune on DATA without augmentation, with the classic
    augmentation (--preset/--pipeline) and, given --synthetic, with synthetic images too and the
    duplicated-reals control (their slots filled with augmented copies of real images), every
    configuration of an arm making the same optimizer steps, on the same repeated splits; print
    accuracy ± 95% CI, the paired differences with their half-width and the effect the repeats
    can detect.

    Rerunning the same command reuses the finished runs in DIR.
    """
    from cli.errors import fail

    if not data.is_dir():
        raise click.BadParameter(f"{str(data)!r} is not a directory", param_hint="'DATA'")
    if test_dir is not None and not test_dir.is_dir():
        raise click.BadParameter(f"{str(test_dir)!r} is not a directory", param_hint="'--test'")
    from cli.options import refuse_inside

    refuse_inside(
        out, "'--out'", DATA=data, **{"--test": test_dir, "--synthetic": kw.get("synthetic")}
    )
    if train_per_class is not None and test_dir is None:
        raise click.BadParameter("needs --test", param_hint="'--train-per-class'")
    arms_list = ["pretrained", "scratch"] if arms == "both" else [arms]
    try:
        config = build_config(**kw)
        if config.preset is None and config.pipeline is None:
            raise click.UsageError("give the classic augmentation to test: --preset or --pipeline")
        from transfer.comparison import compare as run_compare
        from transfer.generative import ARMS, CONFIG_NAMES, CONTROL, arm_configs
        from transfer.images import load_folder

        real = load_folder(data)  # decoded once, for every arm
        folder = config.synthetic
        if folder:  # checked here, not after the first configurations have trained
            from augmentor.io import scan_image_folder

            extra = sorted(set(scan_image_folder(folder).classes) - set(real.classes))
            if extra:
                raise click.BadParameter(
                    f"{str(folder)!r} has classes DATA does not: {', '.join(extra)}",
                    param_hint="'--synthetic'",
                )
        synthetic = (lambda r, part: folder) if folder else None
        n_train = _train_images(
            len(real), len(real.classes), test_dir, train_per_class, test_fraction
        )
        results = {}
        for arm in arms_list:
            base = config
            if arm == "scratch":  # the small CNN from scratch, with this run's data settings
                base = replace(
                    ARMS["scratch"],
                    preset=config.preset,
                    pipeline=config.pipeline,
                    synthetic_mode=config.synthetic_mode,
                    synthetic_ratio=config.synthetic_ratio,
                    replace_p=config.replace_p,
                    seed=config.seed,
                    devices=config.devices,
                    num_workers=config.num_workers,
                )
            configs = arm_configs(base, n_train, synthetic)
            contrasts = [(CONFIG_NAMES[1], CONFIG_NAMES[0])]
            if synthetic is not None:
                contrasts.insert(0, (CONFIG_NAMES[2], CONFIG_NAMES[1]))
                if CONTROL in configs:
                    contrasts.insert(1, (CONFIG_NAMES[2], CONTROL))

            def on_run(name: str, split: int, scores: dict[str, float], arm: str = arm) -> None:
                click.echo(
                    f"{arm}, split {split}: {name}: accuracy {scores['accuracy']:.4f}", err=True
                )

            results[arm] = run_compare(
                real,
                configs,
                out / arm if len(arms_list) > 1 else out,
                repeats,
                test_fraction,
                kw["seed"],
                on_run=on_run,
                test=test_dir,
                train_per_class=train_per_class,
                contrasts=contrasts,
            )
    except ValueError as e:
        fail(str(e))
    for arm, result in results.items():
        if len(results) > 1:
            click.echo(f"\n## {arm} arm\n")
        click.echo(result.table())
    click.echo(f"-> {out}")
    return 0


def _train_images(
    n: int, classes: int, test_dir: Path | None, train_per_class: int | None, test_fraction: float
) -> int:
    """How many real images a split trains on (for the arm's step budget), of ``n`` in DATA."""
    if test_dir is not None and train_per_class is not None:
        return train_per_class * classes
    if test_dir is not None:
        return n
    return round(n * (1 - test_fraction))
