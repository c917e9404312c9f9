"""``augment generate SRC DST``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.options import pipeline_options, resolve_pipeline
from cli.progress import Progress


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
@click.option("--filter", "filter_run", type=click.Path(path_type=Path), hidden=True)
@click.option("--confidence", default=None, hidden=True)
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
    confidence: str | None,
) -> int:
    """Write augmented copies of the image folder SRC (one sub-folder per class) into DST.
    (Synthetic images from a saved generator: `augment sample`.)

    DST gets the class folders, manifest.jsonl (source, output, class, seed and the exact
    sampled parameters of every image), the resolved pipeline.yaml and run.json. Rerunning the
    same command resumes an interrupted run. Exit code 3: finished, but some inputs were
    unreadable (listed).
    """
    from augmentor.generators.config import META_FILE
    from cli.errors import EXIT_SKIPPED, fail, list_skipped

    if (src / META_FILE).exists():
        from cli.sample import sample_generator

        click.echo(
            "note: SRC is a saved generator; `augment sample GEN DST` is the command for it",
            err=True,
        )
        if per_class is None or per_image is not None:
            raise click.UsageError("a saved generator takes --per-class N (not --per-image)")
        if preset is not None or pipeline_file is not None:
            raise click.UsageError(
                "--preset and --pipeline are classic augmentation options; a saved generator "
                "takes neither"
            )
        return sample_generator(src, dst, per_class, seed or 0, filter_run, confidence or "0.5:1.0")
    if filter_run is not None or confidence is not None:
        raise click.UsageError("--filter and --confidence belong to `augment sample`")
    if per_image is None and per_class is None:
        raise click.UsageError("give --per-image N or --per-class N")
    if per_image is not None and per_class is not None:
        raise click.UsageError("--per-image and --per-class are mutually exclusive")
    if not src.exists():
        raise click.BadParameter(f"{str(src)!r} does not exist", param_hint="'SRC'")
    pipe = resolve_pipeline(preset, pipeline_file, seed)

    from augmentor.folders import generate_folder

    bar = Progress("augmenting")
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
    list_skipped(sorted(report.skipped.items()))
    if report.skipped and per_class is not None:
        click.echo("  the images of skipped sources were made from other images of their class")
    if report.removed:
        click.echo(
            f"  removed {len(report.removed)} outputs of sources no longer in SRC "
            f"(e.g. {report.removed[0]})"
        )
    for name, n in sorted(report.short.items()):
        click.echo(f"  class {name!r}: {n} of {per_class} images written (no readable image left)")
    if report.ignored:
        click.echo(f"  ignored {len(report.ignored)} non-image files (e.g. {report.ignored[0]})")
    return EXIT_SKIPPED if report.skipped else 0
