"""``augment audit DATA [--test TEST]``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--test",
    type=click.Path(path_type=Path),
    default=None,
    help="The test folder: images in both are leaks.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Report directory [default: <DATA>-audit beside DATA].",
)
@click.option(
    "--write-clean",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a cleaned copy of DATA here (duplicates collapsed, leaks and conflicts "
    "left out, listed in left_out.jsonl). DATA itself is never changed.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --write-clean folder.")
@click.option(
    "--backbone",
    default="efficientnet_lite0",
    show_default=True,
    help="The feature network (`augment backbones` lists them).",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=8),
    default=None,
    help="The side the network sees [default: the backbone's].",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Feature cache [default: OUT/feature_cache]; give finetune the same --cache-dir "
    "(and backbone and image size) to reuse the features.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Feature cosine similarity from which two images are near-duplicates "
    "[default: 0.95, measured in BENCHMARKS.md].",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def audit(
    data: Path,
    test: Path | None,
    out: Path | None,
    write_clean: Path | None,
    overwrite: bool,
    backbone: str,
    image_size: int | None,
    cache_dir: Path | None,
    threshold: float | None,
    seed: int,
) -> int:
    """Find duplicates, train/test leaks, the same image under two classes, likely label
    errors and outliers in the labelled image folder DATA (DATA/<class>/<image>).

    Writes OUT/report.md (thumbnail grids of every finding) and OUT/audit.json (every
    finding, with paths and scores), and prints a summary. Exit code 3: some images were
    unreadable (listed).
    """
    from cli.errors import EXIT_SKIPPED, fail
    from cli.progress import Progress
    from transfer.audit import DUPLICATE_COSINE
    from transfer.audit import audit as run_audit
    from transfer.audit_report import write_clean as clean
    from transfer.audit_report import write_report

    if not data.is_dir():
        raise click.BadParameter(f"{str(data)!r} is not a directory", param_hint="'DATA'")
    if test is not None and not test.is_dir():
        raise click.BadParameter(f"{str(test)!r} is not a directory", param_hint="'--test'")
    if test is not None and test.resolve() == data.resolve():
        raise click.BadParameter(
            f"{str(test)!r} is DATA itself: give the test folder", param_hint="'--test'"
        )
    if write_clean is not None and write_clean.exists() and not overwrite:
        raise click.BadParameter(
            f"{str(write_clean)!r} exists: remove it or pass --overwrite",
            param_hint="'--write-clean'",
        )
    from cli.options import refuse_inside

    refuse_inside(out, "'--out'", DATA=data, **{"--test": test})
    refuse_inside(write_clean, "'--write-clean'", DATA=data, **{"--test": test})
    dst = out or data.resolve().parent / f"{data.resolve().name}-audit"
    bar = Progress("features")
    try:
        result = run_audit(
            data,
            test,
            backbone=backbone,
            image_size=image_size,
            cache_dir=cache_dir or dst / "feature_cache",
            threshold=threshold if threshold is not None else DUPLICATE_COSINE,
            seed=seed,
            progress=bar.update,
            on_start=lambda n: bar.on_start(n, 0),
        )
    except ValueError as e:
        fail(str(e))
    finally:
        bar.close()
    report = write_report(result, dst)
    click.echo(result.summary())
    click.echo(f"-> {report}")
    if write_clean is not None:
        try:
            made = clean(result, write_clean, overwrite=overwrite)
        except ValueError as e:
            fail(str(e))
        click.echo(
            f"clean copy: {made['kept']} images, {made['left_out']} left out "
            f"(listed in left_out.jsonl) -> {write_clean}"
        )
    return EXIT_SKIPPED if result.skipped else 0
