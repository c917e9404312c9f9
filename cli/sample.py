"""``augment sample GEN_DIR DST``: synthetic images from a saved generator, sampled from noise
or, with ``--like REAL_DIR``, variations of real images."""

from __future__ import annotations

from pathlib import Path

import click

from cli.progress import Progress


@click.command()
@click.argument("generator", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=None,
    help="Synthetic images of each of the generator's classes (sampled from noise).",
)
@click.option(
    "--like",
    "like",
    type=click.Path(path_type=Path),
    default=None,
    help="Instead: variations of every image of this real folder (same classes as the "
    "generator): the VAE's posterior or slerp, the diffusion model's SDEdit.",
)
@click.option(
    "--per-image",
    type=click.IntRange(min=1),
    default=None,
    help="With --like: variations of each real image.",
)
@click.option(
    "--strength",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="With --like: how far a variation departs from its image (0: the image itself).",
)
@click.option(
    "--method",
    type=click.Choice(["posterior", "slerp", "sdedit"]),
    default=None,
    help="With --like: the VAE's posterior (default) or slerp towards another image of the "
    "class; the diffusion model's sdedit.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--filter",
    "filter_run",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep only samples the classifier of this fine-tuned run puts in their class (see "
    "--confidence); rejected samples are replaced by further draws.",
)
@click.option(
    "--filter-real",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep only samples that pass the selective filter fitted on this real folder (the "
    "training images): probe confidence in the band, nearest class centroid, no "
    "near-duplicate. With --like, the --like folder is used when this is not given and "
    "--confidence is.",
)
@click.option(
    "--confidence",
    default=None,
    help="The accepted probability band LO:HI of the conditioned class [default: 0.5:1.0 with "
    "a filter].",
)
def sample(
    generator: Path,
    dst: Path,
    per_class: int | None,
    like: Path | None,
    per_image: int | None,
    strength: float,
    method: str | None,
    seed: int,
    filter_run: Path | None,
    filter_real: Path | None,
    confidence: str | None,
) -> int:
    """Write synthetic images of the saved GENERATOR (the `generator/` or `best/` directory of
    `augment train`) into DST/<class>/: --per-class N samples of each class, or with --like
    REAL_DIR --per-image N variations of each real image (named after it).

    DST gets manifest.jsonl (each row names its source with --like) and run.json, and
    filter.json with a filter (acceptance per class, rejections per reason). The folder is a
    pure function of its settings: rerunning the same command resumes it.
    """
    if like is None and per_class is None:
        raise click.UsageError("give --per-class N, or --like REAL_DIR --per-image N")
    if like is not None and (per_class is not None or per_image is None):
        raise click.UsageError("--like takes --per-image N (not --per-class)")
    if like is None and per_image is not None:
        raise click.UsageError("--per-image needs --like REAL_DIR")
    if filter_run is not None and filter_real is not None:
        raise click.UsageError("--filter and --filter-real are mutually exclusive")
    if like is not None and filter_real is None and filter_run is None and confidence is not None:
        filter_real = like
    if confidence is not None and filter_run is None and filter_real is None:
        raise click.UsageError("--confidence needs --filter RUN or --filter-real REAL_DIR")
    if like is not None and not like.is_dir():
        raise click.BadParameter(f"{str(like)!r} is not a directory", param_hint="'--like'")
    from cli.options import refuse_inside

    refuse_inside(dst, "'DST'", **{"--like": like, "--filter-real": filter_real})
    return sample_generator(
        generator, dst, per_class, seed, filter_run, confidence or "0.5:1.0",
        like=like, per_image=per_image, strength=strength, method=method,
        filter_real=filter_real,
    )  # fmt: skip


def _band(band: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in band.split(":"))
    except ValueError:
        raise click.BadParameter(
            f"expected LO:HI, got {band!r}", param_hint="'--confidence'"
        ) from None
    if not 0 <= lo < hi <= 1:
        raise click.BadParameter(
            f"need 0 <= LO < HI <= 1, got {band!r}", param_hint="'--confidence'"
        )
    return lo, hi


def sample_generator(
    src: Path,
    dst: Path,
    per_class: int | None,
    seed: int,
    filter_run: Path | None,
    confidence: str,
    *,
    like: Path | None = None,
    per_image: int | None = None,
    strength: float = 0.5,
    method: str | None = None,
    filter_real: Path | None = None,
) -> int:
    """The command's body (also behind `augment generate GEN_DIR ...`)."""
    from cli.errors import EXIT_INTERRUPTED, fail

    lo, hi = _band(confidence)
    from augmentor.generators.common import GeneratorError, read_meta
    from augmentor.generators.sample import sample_folder, vary_folder

    accept, accept_name = None, None
    try:
        if filter_run is not None or filter_real is not None:
            names = read_meta(src)["class_names"]
            if filter_run is not None:
                from transfer.export import classifier_filter

                accept, accept_name = classifier_filter(filter_run, lo, hi, names)
            elif filter_real is not None:
                from transfer.synthetic import SyntheticFilter

                keep = SyntheticFilter(filter_real, names, band=(lo, hi))
                accept, accept_name = keep, keep.describe()
    except ValueError as e:
        fail(str(e))
    bar = Progress("varying" if like is not None else "sampling")
    try:
        if like is not None:
            assert per_image is not None
            report = vary_folder(
                src, like, dst, per_image, strength, seed=seed, method=method,
                on_start=bar.on_start, progress=bar.update, accept=accept,
                accept_name=accept_name,
            )  # fmt: skip
        else:
            assert per_class is not None
            report = sample_folder(
                src, dst, per_class, seed=seed, on_start=bar.on_start, progress=bar.update,
                accept=accept, accept_name=accept_name,
            )  # fmt: skip
    except (GeneratorError, ValueError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        click.echo("\nInterrupted: rerun the same command to resume.", err=True)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    click.echo(
        f"written {report.written}, already done {report.already_done}, "
        f"{report.seconds:.1f} s, {report.images_per_second:.1f} images/s -> {dst}"
    )
    if report.removed:
        click.echo(f"  removed {report.removed} variations of sources that changed or went away")
    for name, rate in (report.acceptance or {}).items():
        click.echo(f"  {name}: {rate:.1%} of samples accepted by the filter")
    if report.rejected:
        why = ", ".join(f"{k} {v}" for k, v in sorted(report.rejected.items()))
        click.echo(f"  rejected: {why}")
    return 0
