"""``augment evaluate RUN DATA``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Report directory [default: RUN/eval-<DATA name>].",
)
def evaluate(run: Path, data: Path, out: Path | None) -> int:
    """Write the report of a fine-tuned RUN on the labelled image folder DATA.

    The model answers as the exported one does (the run's test-time views and temperature).
    The report holds metrics.json (accuracy, balanced accuracy, macro-F1, expected calibration
    error before and after the temperature, per class, the most confused pairs, the top
    losses), per_class.csv, confusion.png, reliability.png, top_losses.png, config.json and
    report.md. Exit code 3: some images were unreadable
    (listed).
    """
    from cli.errors import fail, list_skipped
    from transfer.calibration import calibration_report, read_calibration, served_view_probs
    from transfer.evaluate import classification_metrics, write_report
    from transfer.export import load_run
    from transfer.images import load_folder
    from transfer.preprocess import PreprocessModule

    if not data.is_dir():
        raise click.BadParameter(f"{str(data)!r} is not a directory", param_hint="'DATA'")
    from cli.options import refuse_inside

    refuse_inside(out, "'--out'", DATA=data)
    try:
        model, classes, pre, cfg = load_run(run)
        images = load_folder(data, classes=classes)
        calibration = read_calibration(run, cfg)
        raw = served_view_probs(model, PreprocessModule(pre), images, calibration.tta)
    except ValueError as e:
        fail(str(e))
    dst = out or run / f"eval-{data.resolve().name}"
    probs, calib = calibration_report(dst, calibration, raw, images.labels, str(data))
    metrics = classification_metrics(images.labels, probs, classes, images.sources)
    write_report(
        dst,
        metrics,
        classes,
        cfg,
        title=f"{run} on {data}",
        extra={
            "split": str(data),
            "skipped": [list(s) for s in images.skipped],
            "calibration": calib,
        },
        images=images,
    )
    click.echo(
        f"accuracy {metrics['accuracy']:.4f}, balanced accuracy "
        f"{metrics['balanced_accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        f"on {metrics['n']} images -> {dst}"
    )
    return list_skipped(images.skipped)
