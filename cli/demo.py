"""``augment demo``: the main job on the bundled data, through the library functions only."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Run directory.",
)
@click.option("--quick", is_flag=True, help="Tiny budgets (a smoke test).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
def demo(out: Path, quick: bool, workers: int) -> None:
    """Classic augmentation on the bundled Fashion-MNIST subset: export it as an image folder,
    write a preview grid of the default preset, and generate an augmented copy of the set."""
    from augmentor import preset
    from augmentor.datasets import export_dataset
    from augmentor.jobs import generate_folder, preview_grid

    data = out / "data" / "train"
    if not data.exists():
        n = export_dataset("fashion-mnist-subset", data, "train")
        click.echo(f"[1/3] exported the bundled Fashion-MNIST subset: {n} images -> {data}")
    else:
        click.echo(f"[1/3] using {data}")
    pipe = preset("medium", seed=0)
    info = preview_grid(data, pipe, out / "preview.png", rows=10, columns=8)
    click.echo(f"[2/3] preview grid ({info['rows']} x {info['columns']}) -> {out / 'preview.png'}")
    kwargs = {"per_class": 20} if quick else {"per_image": 2}
    report = generate_folder(data, out / "augmented", pipe, workers=workers, **kwargs)
    click.echo(
        f"[3/3] generated {report.written} augmented images "
        f"({report.already_done} already there) in {report.seconds:.1f} s "
        f"({report.images_per_second:.0f} images/s) -> {out / 'augmented'}"
    )
