"""``augment demo``: the main job on the bundled data, end to end. The study itself is
:func:`transfer.study.run_study` (callable and tested from Python); this command parses the
options and prints its lines.

The question it answers: with ``--shots`` real images per class, does classic augmentation help
a fine-tuned pretrained backbone, and do synthetic images from a generator help on top of it?
Every repeat draws a new training set from the bundled training images and tests on the same
1,000 bundled test images. The generator of a repeat is trained on that repeat's training images
only, so no synthetic image carries information from a test image.

Everything lands in ``--out`` and is reused when the command runs again: an interrupted demo
resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from cli.options import devices_option


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run directory [default: runs/demo, or runs/demo-quick with --quick].",
)
@click.option("--quick", is_flag=True, help="The same steps at tiny budgets (a smoke test).")
@click.option(
    "--shots",
    type=click.IntRange(min=5, max=100),
    default=None,
    help="Real training images per class in each repeat [default: 20; 10 with --quick].",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=2),
    default=None,
    help="Training draws (each config runs on every one) [default: 5; 2 with --quick].",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@devices_option
def demo(
    out: Path | None, quick: bool, shots: int | None, repeats: int | None, seed: int, devices: Any
) -> None:
    """Did augmentation help? The whole story on the bundled Fashion-MNIST subset, offline.

    \b
    1. a preview grid of the classic augmentation;
    2. a class-conditional generator (VAE) per repeat, its sample grid and KID;
    3. the pretrained EfficientNet-Lite0, fine-tuned (LP-FT) in three configurations on the
       same repeats: real only; real + classic; real + classic + synthetic;
    4. accuracy +- 95% CI, paired differences, and report.md with the pictures.

    Rerun the same command to resume an interrupted demo.
    """
    import logging

    from transfer.study import FULL, QUICK, run_study

    budget = QUICK if quick else FULL
    budget = replace(
        budget, shots=shots or budget.shots, repeats=repeats or budget.repeats
    )  # fmt: skip
    out = out or Path("runs/demo-quick" if quick else "runs/demo")
    for name in ("lightning.pytorch", "lightning.fabric"):  # the study's own lines say what happens
        logging.getLogger(name).setLevel(logging.ERROR)
    from cli.errors import fail

    try:
        result = run_study(out, budget, seed, devices, say=click.echo)
    except ValueError as e:
        fail(str(e))
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; rerun the same command to resume ({out})", err=True)
        raise SystemExit(130) from None
    click.echo(f"done in {result.seconds:.0f} s -> {result.report}")
