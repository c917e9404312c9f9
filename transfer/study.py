"""The demo's study, callable from Python: with ``shots`` real images per class, does classic
augmentation help a fine-tuned pretrained backbone, and do synthetic images from a generator
help on top of it?

Every repeat draws a new training set from the bundled training images and tests on the same
1,000 bundled test images. The generator of a repeat is trained on that repeat's training images
only, so no synthetic image carries information from a test image. Everything lands in ``out``
and is reused when the study runs again: an interrupted study resumes where it stopped.
``augment demo`` (:mod:`cli.demo`) only parses options and prints what :func:`run_study`
reports through ``say``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from transfer.comparison import Comparison, ConfigSpec

log = logging.getLogger(__name__)

__all__ = ["CONFIGS", "FULL", "GENERATOR", "QUICK", "Budget", "StudyResult", "run_study"]


@dataclass(frozen=True)
class Budget:
    """Sizes of one demo run: the full run and ``--quick`` differ only here."""

    shots: int  # training images per class in each repeat
    repeats: int
    image_size: int  # backbone input (the 28 px images are upsampled)
    probe_epochs: int
    epochs: int
    generator_steps: int
    kid_samples: int


FULL = Budget(
    shots=20, repeats=5, image_size=96, probe_epochs=30, epochs=4, generator_steps=1500,
    kid_samples=500,
)  # fmt: skip
QUICK = Budget(
    shots=10, repeats=2, image_size=32, probe_epochs=3, epochs=1, generator_steps=40,
    kid_samples=100,
)  # fmt: skip

GENERATOR = "vae"  # best classification accuracy score of the three in BENCHMARKS.md (issue 4)
CONFIGS = ("real only", "real + classic", "real + classic + synthetic")


@dataclass
class StudyResult:
    """What :func:`run_study` produced."""

    out: Path
    comparison: Comparison
    kids: list[dict[str, Any]]
    seconds: float

    @property
    def report(self) -> Path:
        return self.out / "report.md"


def _log(message: str) -> None:
    log.info("%s", message)


def run_study(
    out: str | Path,
    budget: Budget = FULL,
    seed: int = 0,
    devices: Any = "auto",
    say: Callable[[str], None] = _log,
) -> StudyResult:
    """Run (or resume) the study in ``out``; ``say`` receives one line per finished step."""
    from augmentor.datasets import export_dataset
    from augmentor.folders import preview_grid
    from transfer.comparison import compare
    from transfer.config import FinetuneConfig
    from transfer.images import LabelledImages, load_folder
    from transfer.splits import per_class_draws

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Path] = {}
    for split in ("train", "test"):

        def export(folder: Path, split: str = split) -> int:
            return export_dataset("fashion-mnist-subset", folder, split)

        data[split] = _write_once(out / "data" / split, export)
    train = load_folder(data["train"])
    test = load_folder(data["test"], train.classes)
    say(
        f"data: the bundled Fashion-MNIST subset, {len(train)} training and {len(test)} test "
        f"images, {len(train.classes)} classes; each repeat trains on {budget.shots} per class"
    )

    base = FinetuneConfig(
        image_size=budget.image_size,
        probe_epochs=budget.probe_epochs,
        epochs=budget.epochs,
        lr=3e-4,  # the rate its 4 short epochs were measured with (BENCHMARKS.md)
        # no MixUp/CutMix: they pay off over the default's 50 epochs, not over the demo's 4
        mixup=0.0,
        cutmix=0.0,
        crop_pct=None,  # the backbone's own crop, as the demo's figures were measured
        devices=devices,
        seed=seed,
    )
    classic = base.augmentation()
    if classic is None:  # the study's base config always has a preset
        raise ValueError("the study needs a classic augmentation preset")
    info = preview_grid(data["train"], classic, out / "preview.png", rows=10, columns=8)
    say(
        f"[1/4] preview of the classic augmentation ({base.preset} preset: "
        f"{', '.join(type(op).__name__ for op in classic.ops)}), "
        f"{info['rows']} x {info['columns']} -> {out / 'preview.png'}"
    )

    # The generator of repeat r learns from repeat r's training images only. The draws are
    # the ones compare() makes (same function, same arguments); the config callback checks it.
    draws = per_class_draws(train.labels, budget.shots, budget.repeats, seed, train.classes)
    synthetic: dict[int, tuple[Path, list[str]]] = {}
    kids = []
    for r, idx in enumerate(draws):
        part = train.subset(idx)
        syn, kid, seconds = _generator_for_repeat(
            out / "generators" / f"repeat-{r}", part, data["test"], budget, seed + r, devices
        )
        synthetic[r] = (syn, part.content_keys())
        kids.append(kid)
        say(
            f"[2/4] repeat {r + 1}/{budget.repeats}: {GENERATOR} on {len(part)} images "
            f"({seconds:.0f} s), KID vs the test images {kid['kid']:.2f} +- {kid['kid_std']:.2f}"
        )

    def with_synthetic(r: int, part: LabelledImages) -> FinetuneConfig:
        folder, keys = synthetic[r]
        if part.content_keys() != keys:
            raise RuntimeError(f"repeat {r}: the training draw differs from the generator's")
        return replace(base, synthetic=str(folder))

    configs: dict[str, ConfigSpec] = {
        CONFIGS[0]: replace(base, preset=None),
        CONFIGS[1]: base,
        CONFIGS[2]: with_synthetic,
    }
    started = time.perf_counter()
    total = len(configs) * budget.repeats
    done = [0]

    def on_run(name: str, r: int, scores: dict[str, float]) -> None:
        done[0] += 1
        say(
            f"[3/4] {done[0]}/{total} {name}, repeat {r + 1}: test accuracy "
            f"{scores['accuracy'] * 100:.1f}% ({time.perf_counter() - started:.0f} s so far)"
        )

    result = compare(
        train,
        configs,
        out / "compare",
        repeats=budget.repeats,
        seed=seed,
        on_run=on_run,
        test=test,
        train_per_class=budget.shots,
    )
    say("[4/4] test accuracy on the 1,000 bundled test images:\n")
    say(result.table())
    seconds = time.perf_counter() - t0
    _write_report(out, budget, base, result, kids, seconds)
    return StudyResult(out, result, kids, seconds)


def _write_once(folder: Path, write: Callable[[Path], int]) -> Path:
    """``write(folder)`` unless an earlier run finished it (a ``.complete`` stamp says so)."""
    stamp = folder / ".complete"
    if not stamp.exists():
        n = write(folder)
        stamp.write_text(f"{n}\n")
    return folder


def _generator_for_repeat(
    out: Path, part: Any, test: Path, budget: Budget, seed: int, devices: Any
) -> tuple[Path, dict[str, Any], float]:
    """Train (or reuse) the repeat's generator, sample its synthetic folder, measure its KID."""
    from augmentor.generators.callbacks import write_grid
    from augmentor.generators.config import TrainConfig
    from augmentor.generators.fit import train_generator
    from augmentor.generators.sample import sample_folder
    from transfer.images import save_folder
    from transfer.quality import evaluate_generator

    config = TrainConfig(
        GENERATOR, steps=budget.generator_steps, steps_per_epoch=min(500, budget.generator_steps),
        seed=seed, devices=devices,
    )  # fmt: skip
    # a directory left by other settings (another --shots, --seed or budget) starts over
    key = hashlib.sha256(
        json.dumps([part.content_keys(), asdict(config), budget.kid_samples]).encode()
    ).hexdigest()
    stamp = out / "demo-key.txt"
    if out.exists() and (not stamp.is_file() or stamp.read_text() != key):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)
    real = _write_once(out / "real", lambda folder: save_folder(part, folder))
    seconds = 0.0
    done = out / "train.json"
    if not (done.is_file() and json.loads(done.read_text())["steps"] >= budget.generator_steps):
        last = out / "checkpoints" / "last.ckpt"
        result = train_generator(real, out, config, resume=last.is_file(), progress=False)
        seconds = result.seconds
    from augmentor.generators.registry import load_generator

    if not (out / "samples.png").is_file():  # written once the generator is final
        gen = load_generator(out / "generator")
        write_grid(out / "samples.png", gen, gen.num_classes, per_class=8, seed=0)
    syn = out / "synthetic"
    sample_folder(out / "generator", syn, per_class=budget.shots, seed=seed)
    quality = out / "quality" / "quality.json"
    if quality.is_file():
        kid = json.loads(quality.read_text())
    else:
        kid = evaluate_generator(out / "generator", test, quality.parent, n=budget.kid_samples)
    return syn, kid, seconds


def _write_report(
    out: Path,
    budget: Budget,
    base: Any,
    result: Any,
    kids: list[dict[str, Any]],
    seconds: float,
) -> None:
    import numpy as np
    import torch

    from augmentor.io import atomic_write_text
    from augmentor.trainer import versions
    from transfer.comparison import run_dir_name
    from transfer.evaluate import VERSIONS

    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    best = max(result.names, key=lambda n: result.summary[n]["accuracy"].mean)
    slug = run_dir_name(best)
    kid_mean = float(np.mean([k["kid"] for k in kids]))
    kid_rows = "\n".join(
        f"| {r + 1} | {k['kid']:.2f} ± {k['kid_std']:.2f} | {k['fid']:.1f} | "
        f"{k['near_duplicate_rate'] * 100:.1f}% |"
        for r, k in enumerate(kids)
    )
    lines = [
        "# Did the augmentation help?",
        "",
        f"Bundled Fashion-MNIST subset, {budget.shots} real training images per class in each of "
        f"{budget.repeats} repeats (a new draw from the 1,000 training images each time), every "
        "run tested on the same 1,000 bundled test images.",
        "",
        "## Fine-tuning: test accuracy",
        "",
        f"{base.backbone} (ImageNet weights), {base.strategy}: {base.probe_epochs} probe epochs "
        f"on cached features, then {base.epochs} epochs of the whole network at "
        f"{base.image_size} px. Classic augmentation: the `{base.preset}` preset. Synthetic: "
        f"{budget.shots} images per class from the repeat's own {GENERATOR}, mixed in at "
        f"{base.synthetic_ratio} synthetic per real image per epoch.",
        "",
        result.table(),
        "",
        f"Per-run reports (metrics, per-class table, confusion matrix, curves): "
        f"`compare/<configuration>/split-<r>/report/`. The configuration with the highest mean "
        f"accuracy here, {best}, on the first repeat:",
        "",
        f"![confusion matrix, {best}, first split](compare/{slug}/split-0/report/confusion.png)",
        "",
        "## Classic augmentation",
        "",
        "![preview: originals on the left, augmented versions to the right](preview.png)",
        "",
        f"## Generator: class-conditional {GENERATOR}, {budget.generator_steps} steps per repeat",
        "",
        f"KID and FID of {budget.kid_samples // 10} samples per class against the 1,000 test "
        "images, in the feature space of EfficientNet-Lite0 at 64 px (not comparable with "
        "Inception-based values); near-duplicates: samples closer to a training image than "
        "the 1% closest training pairs.",
        "",
        "| repeat | KID ± std | FID | near-duplicates |",
        "|---|---|---|---|",
        kid_rows,
        "",
        f"Mean KID over the repeats: {kid_mean:.2f}.",
        "",
        "![generator samples of the first repeat, one row per class](generators/repeat-0/"
        "samples.png)",
        "",
        "## Run",
        "",
        f"{seconds:.0f} s of wall time for this invocation (steps finished by an earlier "
        f"invocation are reused, not timed) on {device}.",
        "",
        "## Versions",
        "",
        "```json",
        json.dumps(versions((*VERSIONS, "diffusers")), indent=2),
        "```",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
