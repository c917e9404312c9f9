"""``augment generate SRC DST``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.options import pipeline_options, resolve_pipeline

GENERATOR_MARKER = "generator.json"  # augmentor.generators.common.META_FILE (test-checked)


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--per-image",
    type=click.IntRange(min=0),
    default=None,
    help="Augmented copies of each source image.",
)
@click.option(
    "--per-class",
    type=click.IntRange(min=0),
    default=None,
    help="Instead: augmented images per class (round-robin over its images).",
)
@pipeline_options()
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker processes (0: in this process). Output is identical for any value.",
)
@click.option(
    "--filter",
    "filter_run",
    type=click.Path(path_type=Path),
    default=None,
    help="Generator SRC only: keep samples the classifier of this fine-tuned run puts in "
    "their class (see --confidence).",
)
@click.option(
    "--confidence",
    default="0.5:1.0",
    show_default=True,
    help="With --filter: the accepted probability band LO:HI of the conditioned class.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["png", "jpg", "webp"]), default="png", show_default=True
)
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    help="JPEG/WebP quality.",
)
def generate(
    src: Path,
    dst: Path,
    per_image: int | None,
    per_class: int | None,
    preset: str | None,
    pipeline_file: Path | None,
    seed: int | None,
    workers: int,
    fmt: str,
    quality: int,
    filter_run: Path | None,
    confidence: str,
) -> int:
    """Write augmented copies of the image folder SRC (one sub-folder per class) into DST,
    or, when SRC is a saved generator (`augment train`), --per-class synthetic images of each
    of its classes.

    DST gets the class folders, manifest.jsonl (source, output, class, seed and the exact
    sampled parameters of every image), the resolved pipeline.yaml and run.json. Rerunning the
    same command resumes an interrupted run. Exit code 3: finished, but some inputs were
    unreadable (listed).
    """
    from cli.main import EXIT_SKIPPED, fail

    if (src / GENERATOR_MARKER).exists():
        return _sample_generator(src, dst, per_image, per_class, seed, filter_run, confidence)
    if per_image is None and per_class is None:
        raise click.UsageError("give --per-image N or --per-class N")
    if per_image is not None and per_class is not None:
        raise click.UsageError("--per-image and --per-class are mutually exclusive")
    if not src.exists():
        raise click.BadParameter(f"{str(src)!r} does not exist", param_hint="'SRC'")
    pipe = resolve_pipeline(preset, pipeline_file, seed)

    from augmentor.jobs import generate_folder

    bar = _Progress("augmenting")
    try:
        report = generate_folder(
            src,
            dst,
            pipe,
            per_image=per_image,
            per_class=per_class,
            workers=workers,
            fmt=fmt,
            quality=quality,
            progress=bar.update,
            on_start=bar.on_start,
        )
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        bar.close()
        click.echo(
            "\nInterrupted: finished images are kept; rerun the same command to resume.", err=True
        )
        sys.exit(130)
    finally:
        bar.close()
    click.echo(
        f"written {report.written}, already done {report.already_done}, "
        f"skipped {len(report.skipped)} source images, {report.seconds:.1f} s, "
        f"{report.images_per_second:.1f} images/s -> {dst}"
    )
    for path, reason in sorted(report.skipped.items()):
        click.echo(f"  skipped {path}: {reason}")
    if report.ignored:
        click.echo(f"  ignored {len(report.ignored)} non-image files (e.g. {report.ignored[0]})")
    return EXIT_SKIPPED if report.skipped else 0


class _Progress:
    """A click progress bar, opened once the job knows its size (its ``on_start`` hook)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def on_start(self, todo: int, done: int) -> None:
        if done:
            click.echo(f"Resuming: {done} images already written.", err=True)
        self.bar = click.progressbar(
            length=todo, label=self.label, file=sys.stderr, show_pos=True, show_eta=True
        )
        self.bar.__enter__()

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _classifier_filter(run: Path, band: str, class_names: list[str]) -> tuple:
    """Keep samples that the classifier of RUN (`augment finetune`) puts in their conditioned
    class with a probability inside the band LO:HI."""
    import torch

    from cli.main import fail
    from transfer.export import Predictor

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
    try:
        predictor = Predictor(run)
    except ValueError as e:
        fail(str(e))
    missing = [c for c in class_names if c not in predictor.classes]
    if missing:
        fail(f"the classifier in {str(run)!r} does not know the generator's classes {missing}")
    to_run = torch.tensor([predictor.classes.index(c) for c in class_names])

    def accept(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            probs = predictor.model(images)
        idx = to_run[labels]
        p = probs[torch.arange(len(idx)), idx]
        return (probs.argmax(1) == idx) & (p >= lo) & (p <= hi)

    return accept, f"classifier {run}: predicted class = label, probability in [{lo}, {hi}]"


def _sample_generator(
    src: Path,
    dst: Path,
    per_image: int | None,
    per_class: int | None,
    seed: int | None,
    filter_run: Path | None,
    confidence: str,
) -> int:
    from cli.main import fail

    if per_class is None or per_image is not None:
        raise click.UsageError("a saved generator takes --per-class N (not --per-image)")
    from augmentor.generators.common import GeneratorError, read_meta
    from augmentor.generators.sample import sample_folder

    accept, accept_name = None, None
    if filter_run is not None:
        try:
            names = read_meta(src)["class_names"]
        except GeneratorError as e:
            fail(str(e))
        accept, accept_name = _classifier_filter(filter_run, confidence, names)
    bar = _Progress("sampling")
    try:
        report = sample_folder(
            src,
            dst,
            per_class,
            seed=seed or 0,
            on_start=bar.on_start,
            progress=bar.update,
            accept=accept,
            accept_name=accept_name,
        )
    except (GeneratorError, ValueError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        click.echo("\nInterrupted: rerun the same command to resume.", err=True)
        return 130
    finally:
        bar.close()
    click.echo(
        f"written {report.written}, already done {report.already_done}, "
        f"{report.seconds:.1f} s, {report.images_per_second:.1f} images/s -> {dst}"
    )
    for name, rate in (report.acceptance or {}).items():
        click.echo(f"  {name}: {rate:.1%} of samples accepted by the filter")
    return 0
