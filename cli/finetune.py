"""``augment finetune DATA --out RUN``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.options import (
    apply,
    devices_option,
    given,
    network_options,
    preset_choice,
    refuse_inside,
)
from transfer.config import (
    AUTO_EPOCHS,
    AUTO_MIN_STEPS,
    BALANCE,
    CALIBRATION,
    CALIBRATION_FOLDS,
    STRATEGIES,
    SYNTHETIC_MODES,
    TTA_MODES,
    FinetuneConfig,
)

D = FinetuneConfig.default  # every default below is the library's own


def finetune_options(f: Any) -> Any:
    """The recipe options shared by ``finetune`` and ``compare``."""
    options = [
        *network_options(D),
        click.option(
            "--strategy", type=click.Choice(STRATEGIES), default=D("strategy"), show_default=True
        ),
        click.option(
            "--epochs",
            type=click.IntRange(min=1),
            default=D("epochs"),
            help=f"Fine-tuning epochs [default: {AUTO_EPOCHS}, more on a training set so small "
            f"that {AUTO_EPOCHS} epochs make fewer than {AUTO_MIN_STEPS} optimizer steps].",
        ),
        click.option(
            "--probe-epochs",
            type=click.IntRange(min=1),
            default=D("probe_epochs"),
            show_default=True,
            help="Head epochs on cached features (linear, lp-ft).",
        ),
        click.option(
            "--feature-views",
            type=click.IntRange(min=1),
            default=D("feature_views"),
            show_default=True,
            help="Augmented views per image in the feature cache (linear, lp-ft).",
        ),
        click.option(
            "--batch-size", type=click.IntRange(min=1), default=D("batch_size"), show_default=True
        ),
        click.option(
            "--lr",
            type=click.FloatRange(min=0, min_open=True),
            default=D("lr"),
            show_default=True,
            help="Top backbone learning rate.",
        ),
        click.option(
            "--head-lr",
            type=click.FloatRange(min=0, min_open=True),
            default=D("head_lr"),
            show_default=True,
        ),
        click.option(
            "--mixup",
            type=click.FloatRange(min=0),
            default=D("mixup"),
            show_default=True,
            help="MixUp alpha for fine-tuning batches (0: off).",
        ),
        click.option(
            "--cutmix",
            type=click.FloatRange(min=0),
            default=D("cutmix"),
            show_default=True,
            help="CutMix alpha (0: off); with --mixup too, each batch gets one of them.",
        ),
        click.option(
            "--balance",
            type=click.Choice(BALANCE),
            default=D("balance"),
            show_default=True,
            help="Class imbalance: weighted loss or balanced sampler.",
        ),
        click.option(
            "--val-fraction",
            type=click.FloatRange(0, 1, max_open=True),
            default=D("val_fraction"),
            help="Share of each class held out for validation [default: 0.2 when every class "
            "has >= 100 images, else 0: no validation, fixed epochs, last weights].",
        ),
        click.option(
            "--train-bn-stats",
            is_flag=True,
            help="Let BatchNorm running statistics adapt (default: kept, better on tiny data).",
        ),
        click.option(
            "--patience",
            type=click.IntRange(min=0),
            default=D("patience"),
            show_default=True,
            help="Early-stopping patience (0: off).",
        ),
        click.option("--seed", type=click.IntRange(min=0), default=D("seed"), show_default=True),
        devices_option,
        click.option(
            "--num-nodes", type=click.IntRange(min=1), default=D("num_nodes"), show_default=True
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=D("num_workers"),
            help="DataLoader workers [default: on a GPU machine the CPU count less one, at "
            "most 8; else 0].",
        ),
        click.option(
            "--synthetic-ratio",
            type=click.FloatRange(min=0),
            default=D("synthetic_ratio"),
            show_default=True,
            help="Synthetic images per real image per epoch.",
        ),
        click.option(
            "--synthetic-mode",
            type=click.Choice(SYNTHETIC_MODES),
            default=D("synthetic_mode"),
            show_default=True,
            help="extra: --synthetic-ratio extra slots per real image; replace: each real image "
            "replaced by one of its variations (augment sample --like) with probability "
            "--replace-p.",
        ),
        click.option(
            "--replace-p",
            type=click.FloatRange(0, 1),
            default=D("replace_p"),
            show_default=True,
            help="With --synthetic-mode replace: the probability of the swap.",
        ),
        click.option(
            "--synthetic",
            type=click.Path(path_type=Path),
            default=None,
            help="A folder of synthetic images (same classes), for training only.",
        ),
        click.option(
            "--pipeline",
            "pipeline_file",
            type=click.Path(path_type=Path),
            help="An augmentation pipeline YAML/JSON file.",
        ),
        click.option(
            "--tta",
            default=D("tta"),
            show_default=True,
            callback=_check_tta,
            help=f"Test-time views averaged inside the exported model: {', '.join(TTA_MODES)}. "
            "Flip only where a mirrored image keeps its class (augment tune says).",
        ),
        click.option(
            "--calibration",
            type=click.Choice(CALIBRATION),
            default=D("calibration"),
            show_default=True,
            help="Where the temperature of the exported probabilities is fitted: the "
            f"validation split, out-of-fold predictions ({CALIBRATION_FOLDS} more runs), none; "
            "auto: validation if there is one, else folds for linear, else none.",
        ),
        click.option(
            "--preset",
            type=preset_choice(["none"]),
            default=D("preset"),
            show_default=True,
            help="Classic augmentation of training images.",
        ),
    ]
    return apply(options)(f)


def _check_tta(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from augmentor._validation import check_choice

    try:
        return check_choice(None, "--tta", value, TTA_MODES)
    except ValueError as e:
        raise click.BadParameter(str(e).removeprefix("--tta "), param_hint="'--tta'") from None


def build_config(**kw: Any) -> Any:
    """A FinetuneConfig from the options, or a click error naming the option."""
    from augmentor import Pipeline

    pipeline = None
    if kw.get("pipeline_file") is not None and given("preset"):
        raise click.UsageError("--preset and --pipeline are mutually exclusive: give one")
    if kw.get("pipeline_file") is not None:
        path = kw["pipeline_file"]
        if not path.is_file():
            raise click.BadParameter(f"{str(path)!r} is not a file", param_hint="'--pipeline'")
        try:
            pipeline = Pipeline.load(path).get_config()
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--pipeline'") from None
    if kw.get("weights") is not None and kw.get("no_pretrained"):
        raise click.UsageError("--weights and --no-pretrained are mutually exclusive")
    if kw.get("synthetic") is not None and not kw["synthetic"].is_dir():
        raise click.BadParameter(
            f"{str(kw['synthetic'])!r} is not a directory", param_hint="'--synthetic'"
        )
    return FinetuneConfig(
        backbone=kw["backbone"],
        weights=str(kw["weights"]) if kw.get("weights") else None,
        pretrained=not kw["no_pretrained"],
        strategy=kw["strategy"],
        image_size=kw["image_size"],
        crop_pct=kw["crop_pct"],
        epochs=kw["epochs"],
        probe_epochs=kw["probe_epochs"],
        feature_views=kw["feature_views"],
        batch_size=kw["batch_size"],
        lr=kw["lr"],
        head_lr=kw["head_lr"],
        mixup=kw["mixup"],
        cutmix=kw["cutmix"],
        balance=kw["balance"],
        val_fraction=kw["val_fraction"],
        bn_stats_frozen=not kw["train_bn_stats"],
        patience=kw["patience"],
        seed=kw["seed"],
        devices=kw["devices"],
        num_nodes=kw["num_nodes"],
        num_workers=kw["workers"],
        preset=None if kw["preset"] == "none" or pipeline is not None else kw["preset"],
        pipeline=pipeline,
        synthetic=str(kw["synthetic"]) if kw.get("synthetic") else None,
        synthetic_ratio=kw["synthetic_ratio"],
        synthetic_mode=kw["synthetic_mode"],
        replace_p=kw["replace_p"],
        tta=kw["tta"],
        calibration=kw["calibration"],
    )


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="The run directory."
)
@finetune_options
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.ckpt.")
@click.option("--no-export", is_flag=True, help="Skip the TorchScript and ONNX exports.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in RUN.")
def finetune(
    data: Path, out: Path, resume: bool, no_export: bool, overwrite: bool, **kw: Any
) -> int:
    """Fine-tune a pretrained backbone on the image folder DATA (one sub-folder per class).

    RUN gets the best checkpoint, model.safetensors, labels.json, export/ (TorchScript and
    ONNX with the preprocessing inside) and report/ (metrics, per-class table, confusion
    matrix, learning curves, config and versions). Exit code 3: finished, but some images were
    unreadable (listed).
    """
    from augmentor.trainer import CheckpointError, DivergenceError, is_global_zero
    from cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, fail, list_skipped

    if not data.is_dir():
        raise click.BadParameter(f"{str(data)!r} is not a directory", param_hint="'DATA'")
    refuse_inside(out, "'--out'", DATA=data, **{"--synthetic": kw.get("synthetic")})
    try:
        config = build_config(**kw)
        from transfer.finetuning import finetune as run_finetune

        result = run_finetune(
            data, out, config, resume=resume, export=not no_export, overwrite=overwrite
        )
    except (ValueError, CheckpointError) as e:
        fail(str(e))
    except DivergenceError as e:
        fail(str(e), code=EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo(
            "\nInterrupted: rerun the same command with --resume to continue from the "
            "last finished epoch.",
            err=True,
        )
        return EXIT_INTERRUPTED
    if not is_global_zero():  # several devices: rank 0 alone reports
        return 0
    m, where = result.val_metrics, "validation"
    if m is None:
        m, where = json.loads((out / "report" / "metrics.json").read_text()), "training"
    click.echo(
        f"{where}: accuracy {m['accuracy']:.4f}, balanced accuracy "
        f"{m['balanced_accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} ({m['n']} images)"
    )
    click.echo(
        f"probe {result.probe_seconds:.1f} s, fine-tuning {result.finetune_seconds:.1f} s"
        + (f", {result.train_images_per_s:.1f} train images/s" if result.train_images_per_s else "")
    )
    if result.kept:
        click.echo(f"kept: {result.kept}")
    calib = result.calibration
    if calib is not None and calib.fitted_on != "none":
        click.echo(
            f"served: --tta {calib.tta}, temperature {calib.temperature:.3f} fitted on "
            f"{calib.n} {calib.fitted_on} predictions (NLL {calib.nll_before:.4f} -> "
            f"{calib.nll_after:.4f})"
        )
    elif calib is not None:
        click.echo(f"served: --tta {calib.tta}; {calib.note or 'not calibrated'}")
    click.echo(f"run -> {out} (report: {out / 'report' / 'report.md'})")
    return list_skipped(result.skipped)
