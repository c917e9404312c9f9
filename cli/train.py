"""``augment train gan|vae|diffusion DATA --out DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from augmentor.generators.config import KINDS, MAX_IMAGE_SIZE, TrainConfig
from cli.options import devices_option, given

D = TrainConfig.default  # every default below is the library's own


@click.command()
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The run directory.")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Training steps [default: from the data and kind].",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="A wall-clock budget instead.",
)
@click.option(
    "--image-size",
    type=click.IntRange(16, MAX_IMAGE_SIZE),
    default=D("image_size"),
    help="Training image side (divisible by 4) [default: from the data].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--base-channels", type=click.IntRange(4, 1024), default=None)
@click.option(
    "--steps-per-epoch",
    type=click.IntRange(min=1),
    default=D("steps_per_epoch"),
    show_default=True,
    help="Steps between checkpoints, sample grids and KID checks.",
)
@click.option("--no-diffaugment", is_flag=True, help="GAN: train without DiffAugment.")
@click.option(
    "--no-class-bn", is_flag=True, help="GAN: plain BatchNorm instead of class-conditional."
)
@click.option(
    "--discriminator",
    default=D("discriminator"),
    show_default=True,
    help="GAN: 'standard' (on the pixels), 'projected' (Projected GAN: on frozen "
    "EfficientNet-Lite0 features at four scales) or 'vision-aided' (both).",
)
@click.option(
    "--mode-seeking",
    type=click.FloatRange(min=0),
    default=D("mode_seeking"),
    show_default=True,
    help="GAN: weight of a term asking two noise vectors of one class for different images "
    "(MSGAN); 0 = off.",
)
@click.option(
    "--feature-size",
    type=int,
    default=None,
    help="GAN, projected discriminator: the side images are resized to for the feature network "
    "(a multiple of 32 in [32, 512]) [default: twice the image size, 64 to 256].",
)
@click.option(
    "--feature-network",
    default=D("feature_network"),
    show_default=True,
    help="GAN, projected discriminator: the frozen network (efficientnet_lite1/2 need the "
    "'lite' extra).",
)
@click.option(
    "--beta",
    type=click.FloatRange(min=0),
    default=D("beta"),
    show_default=True,
    help="VAE: KL weight.",
)
@click.option(
    "--perceptual",
    type=click.FloatRange(min=0),
    default=D("perceptual"),
    show_default=True,
    help="VAE: weight of a feature reconstruction loss in frozen EfficientNet-Lite0 blocks.",
)
@click.option(
    "--track-kid/--no-track-kid",
    default=True,
    show_default=True,
    help="KID against the training images each epoch; keep the best in DIR/best.",
)
@click.option("--seed", type=click.IntRange(min=0), default=D("seed"), show_default=True)
@devices_option
@click.option("--resume", is_flag=True, help="Continue from DIR/checkpoints/last.ckpt.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in DIR.")
@click.option("--dry-run", is_flag=True, help="Print the chosen settings and a time estimate.")
def train(kind: str, data: Path, out: Path, **kw: Any) -> int:
    """Train a class-conditional generator on the image folder DATA.

    DIR gets generator/ (load it with augmentor.generators.load_generator, or sample it with
    `augment sample DIR/generator DST --per-class N`), best/ (lowest KID), samples/ (a grid
    per epoch), loss.png, logs/ and checkpoints/.
    """
    from cli.errors import fail

    if not data.is_dir():
        raise click.BadParameter(f"{str(data)!r} is not a directory", param_hint="'DATA'")
    from cli.options import refuse_inside

    refuse_inside(out, "'--out'", DATA=data)
    from augmentor.generators.common import GeneratorError
    from augmentor.generators.data import load_training_data
    from augmentor.generators.fit import estimate_seconds, resolve_config, train_generator
    from augmentor.trainer import CheckpointError, DivergenceError, is_global_zero
    from cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, list_skipped

    only = {
        "gan": (
            "no_diffaugment",
            "no_class_bn",
            "discriminator",
            "feature_size",
            "feature_network",
            "mode_seeking",
        ),
        "vae": ("beta", "perceptual"),
    }
    for owner, names in only.items():
        for name in names:
            if kind != owner and given(name):
                option = "--" + name.replace("_", "-")
                raise click.UsageError(f"{option} is a {owner.upper()} option, not {kind}'s")
    try:
        config = TrainConfig(
            kind,
            steps=kw["steps"],
            minutes=kw["minutes"],
            image_size=kw["image_size"],
            batch_size=kw["batch_size"],
            lr=kw["lr"],
            base_channels=kw["base_channels"],
            diffaugment=not kw["no_diffaugment"],
            class_bn=not kw["no_class_bn"],
            discriminator=kw["discriminator"],
            feature_size=kw["feature_size"],
            feature_network=kw["feature_network"],
            mode_seeking=kw["mode_seeking"],
            beta=kw["beta"],
            perceptual=kw["perceptual"],
            steps_per_epoch=kw["steps_per_epoch"],
            seed=kw["seed"],
            devices=kw["devices"],
        )
        prepared = load_training_data(data, config.image_size, config.channels)
        if kw["dry_run"]:  # (a real run logs the notes itself, once)
            for note in prepared.notes:
                click.echo(f"note: {note}", err=True)
            resolved = resolve_config(config, prepared)
            per_step = estimate_seconds(resolved, prepared)
            click.echo(
                f"{len(prepared.labels)} images, {len(prepared.class_names)} classes, "
                f"{resolved.image_size}x{resolved.image_size}x{resolved.channels}"
            )
            for key in (
                "kind",
                "steps",
                "minutes",
                "batch_size",
                "lr",
                "base_channels",
                "steps_per_epoch",
                "diffaugment",
                "class_bn",
                "discriminator",
                "feature_size",
                "feature_network",
                "mode_seeking",
                "ema_decay",
                "seed",
            ):
                click.echo(f"  {key}: {getattr(resolved, key)}")
            if resolved.steps:
                click.echo(
                    f"estimate: {per_step * 1000:.0f} ms/step on this machine, about "
                    f"{per_step * resolved.steps / 60:.1f} min for {resolved.steps} steps "
                    "(plus sample grids and KID checks)"
                )
            return list_skipped(prepared.skipped)
        score = None
        if kw["track_kid"]:
            score = _kid_score(prepared)
        result = train_generator(
            prepared, out, config, resume=kw["resume"], overwrite=kw["overwrite"], score=score
        )
    except (GeneratorError, CheckpointError, ValueError) as e:
        fail(str(e))
    except DivergenceError as e:
        fail(str(e), code=EXIT_FAILED)
    except KeyboardInterrupt:
        last = out / "checkpoints" / "last.ckpt"
        hint = (
            "rerun the same command with --resume to continue from the last checkpoint"
            if last.is_file()
            else f"no checkpoint was written yet (one every {config.steps_per_epoch} steps)"
        )
        click.echo(f"\nInterrupted: {hint}.", err=True)
        return EXIT_INTERRUPTED
    if not is_global_zero():  # several devices: rank 0 alone reports
        return 0
    click.echo(f"{result.steps} steps in {result.seconds:.0f} s -> {result.generator_dir}")
    if result.quality:
        best = min(result.quality, key=lambda q: q["kid"])
        click.echo(
            f"best KID {best['kid']:.4f} ± {best['kid_std']:.4f} at step {best['step']} "
            f"-> {out / 'best'}"
        )
    return list_skipped(prepared.skipped)


def _kid_score(prepared: Any) -> Any:
    """KID of samples against the training images, in EfficientNet-Lite0 feature space."""
    import torch

    from augmentor.generators.common import to_uint8
    from transfer.quality import FeatureSpace, kid_fid_features

    space = FeatureSpace(image_size=max(64, prepared.images.shape[-1] * 2))
    real = space(to_uint8(prepared.images))  # embedded once, compared every epoch

    def score(images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return kid_fid_features(real, space(images), subsets=20).to_dict()

    return score
