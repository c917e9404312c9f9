"""``augment sample GEN_DIR DST``: synthetic images from a saved generator."""

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
    required=True,
    help="Synthetic images of each of the generator's classes.",
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
    "--confidence",
    default="0.5:1.0",
    show_default=True,
    help="With --filter: the accepted probability band LO:HI of the conditioned class.",
)
def sample(
    generator: Path, dst: Path, per_class: int, seed: int, filter_run: Path | None, confidence: str
) -> int:
    """Write --per-class synthetic images of each class of the saved GENERATOR (the
    `generator/` or `best/` directory of `augment train`) into DST/<class>/.

    DST gets manifest.jsonl and run.json (and filter.json with --filter). The folder is a pure
    function of (generator, seed, per-class): rerunning the same command resumes it.
    """
    return sample_generator(generator, dst, per_class, seed, filter_run, confidence)


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
    per_class: int,
    seed: int,
    filter_run: Path | None,
    confidence: str,
) -> int:
    """The command's body (also behind `augment generate GEN_DIR ...`)."""
    from cli.errors import EXIT_INTERRUPTED, fail

    lo, hi = _band(confidence)
    from augmentor.generators.common import GeneratorError, read_meta
    from augmentor.generators.sample import sample_folder

    accept, accept_name = None, None
    try:
        if filter_run is not None:
            from transfer.export import classifier_filter

            names = read_meta(src)["class_names"]
            accept, accept_name = classifier_filter(filter_run, lo, hi, names)
    except ValueError as e:
        fail(str(e))
    bar = Progress("sampling")
    try:
        report = sample_folder(
            src,
            dst,
            per_class,
            seed=seed,
            on_start=bar.on_start,
            progress=bar.update,
            accept=accept,
            accept_name=accept_name,
        )
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
    for name, rate in (report.acceptance or {}).items():
        click.echo(f"  {name}: {rate:.1%} of samples accepted by the filter")
    return 0
