"""``augment quality GEN_DIR DATA``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("generator_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Report directory [default: GENERATOR_DIR/../quality].",
)
@click.option("--samples", type=click.IntRange(min=10), default=500, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def quality(generator_dir: Path, data: Path, out: Path | None, samples: int, seed: int) -> int:
    """KID ± std, FID and memorisation of a saved generator against the real images in DATA,
    in the offline EfficientNet-Lite0 feature space. Writes quality.json and neighbours.png
    (samples above their nearest real images, closest pairs first)."""
    from augmentor.generators.common import GeneratorError
    from cli.errors import fail
    from transfer.quality import evaluate_generator

    dst = out or generator_dir.resolve().parent / "quality"
    try:
        r = evaluate_generator(generator_dir, data, dst, n=samples, seed=seed)
    except (GeneratorError, ValueError) as e:
        fail(str(e))
    floor = r.get("fid_real_halves")
    relative = f"; two halves of the real images: {floor:.1f}" if floor is not None else ""
    click.echo(
        f"KID {r['kid']:.4f} ± {r['kid_std']:.4f}, FID {r['fid']:.1f}{relative} "
        f"({samples} samples vs {r['n_real']} real images)"
    )
    click.echo(
        f"near-duplicates of real images: {r['near_duplicate_rate']:.1%} (features "
        f"{r['feature_duplicate_rate']:.1%}, pixel copies {r['pixel_copy_rate']:.1%}) -> {dst}"
    )
    return 0
