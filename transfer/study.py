"""The demo's study, callable from Python: with ``shots`` real images per class, does classic
augmentation help, and do synthetic images (variations of the real ones, filtered) help on top
of it, beyond what as many more copies of the real images would?

Two arms on the same draws: the pretrained default (EfficientNet-Lite0, LP-FT) and a small CNN
trained from scratch. Per arm four configurations with the same optimizer steps: real only;
real + classic; real + classic + synthetic; duplicated reals (the control). Every repeat draws a
new training set from the bundled training images and tests on the same 1,000 bundled test
images; its generator, its variations and its filter see that repeat's training images only.
Everything lands in ``out`` and is reused when the study runs again: an interrupted study
resumes where it stopped. ``augment demo`` (:mod:`cli.demo`) only parses options and prints
what :func:`run_study` reports through ``say``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from transfer.comparison import Comparison
from transfer.generative import CONFIG_NAMES, CONTROL, RECIPE, SyntheticRecipe
from transfer.images import LabelledImages

log = logging.getLogger(__name__)

__all__ = ["FULL", "QUICK", "RECIPE", "Budget", "StudyResult", "run_study"]


@dataclass(frozen=True)
class Budget:
    """Sizes of one demo run: the full run and ``--quick`` differ only here."""

    shots: int  # training images per class in each repeat
    repeats: int
    image_size: int  # the pretrained arm's input (the 28 px images are upsampled)
    probe_epochs: int
    pretrained_steps: int  # fine-tuning steps of every pretrained configuration
    scratch_steps: int  # steps of every from-scratch configuration
    generator_steps: int
    per_image: int  # variations kept per real image
    caveat: str = ""  # said under the figures (the quick run's are a smoke test, not a result)


FULL = Budget(
    shots=20, repeats=5, image_size=64, probe_epochs=30, pretrained_steps=60, scratch_steps=300,
    generator_steps=1500, per_image=4,
)  # fmt: skip
QUICK = Budget(
    shots=10, repeats=2, image_size=32, probe_epochs=3, pretrained_steps=4, scratch_steps=20,
    generator_steps=40, per_image=2,
    caveat="A smoke test, not a result: at these budgets (a 40-step generator, 4 fine-tuning "
    "steps, 2 repeats) the synthetic images are noise and no difference is meaningful; "
    "`augment demo` gives the figures.",
)  # fmt: skip


@dataclass
class StudyResult:
    """What :func:`run_study` produced."""

    out: Path
    comparisons: dict[str, Comparison]  # per arm
    synthetic: list[dict[str, Any]]  # per repeat: acceptance and rejections of the filter
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
    from transfer.generative import ARMS, arm_configs, make_synthetic
    from transfer.images import load_folder
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
    arms: dict[str, FinetuneConfig] = {
        "pretrained": replace(
            ARMS["pretrained"],
            image_size=budget.image_size,
            probe_epochs=budget.probe_epochs,
            steps=budget.pretrained_steps,
            mixup=0.0,  # MixUp/CutMix pay off over the default's 300 steps, not over 60
            cutmix=0.0,
            synthetic_ratio=1.0,
            devices=devices,
            seed=seed,
        ),
        "scratch": replace(
            ARMS["scratch"],
            steps=budget.scratch_steps,
            synthetic_ratio=1.0,
            devices=devices,
            seed=seed,
        ),
    }
    classic = arms["pretrained"].augmentation()
    if classic is None:  # the study's configs always have a preset
        raise ValueError("the study needs a classic augmentation preset")
    info = preview_grid(data["train"], classic, out / "preview.png", rows=10, columns=8)
    say(
        f"[1/4] preview of the classic augmentation ({arms['pretrained'].preset} preset: "
        f"{', '.join(type(op).__name__ for op in classic.ops)}), "
        f"{info['rows']} x {info['columns']} -> {out / 'preview.png'}"
    )

    # The synthetic images of repeat r come from repeat r's training images only. The draws are
    # the ones compare() makes (same function, same arguments); the callback checks it.
    recipe = replace(RECIPE, steps=budget.generator_steps, per_image=budget.per_image)
    draws = per_class_draws(train.labels, budget.shots, budget.repeats, seed, train.classes)
    made: dict[int, tuple[Path, list[str]]] = {}
    synthetic_rows = []
    for r, idx in enumerate(draws):
        part = train.subset(idx)
        s = make_synthetic(part, out / "synthetic" / f"repeat-{r}", recipe, seed + r, devices)
        made[r] = (s.folder, part.content_keys())
        kept = sum(1 for _ in s.folder.rglob("*.png"))
        synthetic_rows.append({"repeat": r, "kept": kept, "rejected": s.rejected})
        why = ", ".join(f"{k} {v}" for k, v in sorted(s.rejected.items())) or "none"
        say(
            f"[2/4] repeat {r + 1}/{budget.repeats}: {recipe.generator} on {len(part)} images, "
            f"{kept} variations kept by the filter (rejected: {why}; {s.seconds:.0f} s)"
        )
        if r == 0:
            _variations_grid(part, s.folder, out / "variations.png")

    def synthetic(r: int, part: LabelledImages) -> str:
        folder, keys = made[r]
        if part.content_keys() != keys:
            raise RuntimeError(f"repeat {r}: the training draw differs from the generator's")
        return str(folder)

    comparisons: dict[str, Comparison] = {}
    n_train = budget.shots * len(train.classes)
    for arm, base in arms.items():
        configs = arm_configs(base, n_train, synthetic)
        progress = {"done": 0, "total": len(configs) * budget.repeats}
        started = time.perf_counter()

        def on_run(
            name: str,
            r: int,
            scores: dict[str, float],
            arm: str = arm,
            progress: dict[str, int] = progress,
            started: float = started,
        ) -> None:
            progress["done"] += 1
            say(
                f"[3/4] {arm} arm {progress['done']}/{progress['total']} {name}, repeat "
                f"{r + 1}: test accuracy {scores['accuracy'] * 100:.1f}% "
                f"({time.perf_counter() - started:.0f} s)"
            )

        comparisons[arm] = compare(
            train,
            configs,
            out / "compare" / arm,
            repeats=budget.repeats,
            seed=seed,
            on_run=on_run,
            test=test,
            train_per_class=budget.shots,
            contrasts=[
                (CONFIG_NAMES[2], CONFIG_NAMES[1]),
                (CONFIG_NAMES[2], CONTROL),
                (CONFIG_NAMES[1], CONFIG_NAMES[0]),
            ],
        )
    say("[4/4] test accuracy on the 1,000 bundled test images:")
    for arm, result in comparisons.items():
        say(f"\n{arm} arm\n\n{result.table()}")
    if budget.caveat:
        say(f"\n{budget.caveat}")
    seconds = time.perf_counter() - t0
    _write_report(out, budget, arms, recipe, comparisons, synthetic_rows, seconds)
    return StudyResult(out, comparisons, synthetic_rows, seconds)


def _write_once(folder: Path, write: Callable[[Path], int]) -> Path:
    """``write(folder)`` unless an earlier run finished it (a ``.complete`` stamp says so)."""
    stamp = folder / ".complete"
    if not stamp.exists():
        n = write(folder)
        stamp.write_text(f"{n}\n")
    return folder


def _variations_grid(part: LabelledImages, folder: Path, path: Path, per_class: int = 3) -> None:
    """One row per source image (``per_class`` per class): the real image, then its kept
    variations (blank where the filter kept fewer)."""
    import numpy as np

    from augmentor.io import Manifest, load_image, save_image

    rows = Manifest(folder / "manifest.jsonl").read()
    by_key: dict[str, list[Path]] = {}
    for row in rows:
        if "output" in row:
            by_key.setdefault(row["source_key"], []).append(folder / row["output"])
    keys = part.content_keys()
    width = max((len(v) for v in by_key.values()), default=0)
    lines = []
    for c in range(len(part.classes)):
        picked = [i for i in np.flatnonzero(part.labels == c) if keys[i] in by_key][:per_class]
        for i in picked:
            src = part.images[i]
            h, w = src.shape[:2]
            cells = [src] + [load_image(p).reshape(h, w, -1) for p in by_key[keys[i]]]
            cells += [np.zeros_like(src)] * (1 + width - len(cells))
            gap = np.full((h, 2, src.shape[2]), 255, np.uint8)
            lines.append(np.concatenate([cells[0], gap, *cells[1:]], axis=1))
    if lines:
        save_image(path, np.ascontiguousarray(np.concatenate(lines, axis=0)))


def _write_report(
    out: Path,
    budget: Budget,
    arms: dict[str, Any],
    recipe: SyntheticRecipe,
    comparisons: dict[str, Comparison],
    synthetic_rows: list[dict[str, Any]],
    seconds: float,
) -> None:
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
    pre, scratch = arms["pretrained"], arms["scratch"]
    first = comparisons["pretrained"]
    best = max(first.names, key=lambda n: first.summary[n]["accuracy"].mean)
    kept = ", ".join(str(row["kept"]) for row in synthetic_rows)
    lines = [
        "# Did the augmentation help?",
        "",
        f"Bundled Fashion-MNIST subset, {budget.shots} real training images per class in each of "
        f"{budget.repeats} repeats (a new draw from the 1,000 training images each time), every "
        "run tested on the same 1,000 bundled test images. Classic augmentation: the "
        f"`{pre.preset}` preset. Synthetic: per repeat, a class-conditional {recipe.generator} "
        f"trained on that repeat's images only ({recipe.steps} steps), {recipe.per_image} "
        f"variations of each image ({recipe.method}, strength {recipe.strength}) and only "
        "those that pass the filter fitted on the same images (probe confidence in "
        f"{list(recipe.band or [])}, nearest class centroid, no near-duplicate), mixed in as "
        f"{pre.synthetic_ratio:g} extra image per real image; the control, duplicated reals, "
        "fills the same slots with augmented copies of real images. Every configuration of an "
        "arm makes the same optimizer steps.",
        "",
        *([f"**{budget.caveat}**", ""] if budget.caveat else []),
        f"## Pretrained arm: {pre.backbone}, {pre.strategy}, {pre.image_size} px, "
        f"{pre.probe_epochs} probe epochs, {pre.steps} fine-tuning steps",
        "",
        first.table(),
        "",
        f"## From-scratch arm: the small CNN, {scratch.steps} steps",
        "",
        comparisons["scratch"].table(),
        "",
        f"The pretrained configuration with the highest mean accuracy, {best}, on the first "
        "repeat:",
        "",
        f"![confusion matrix, {best}, first split](compare/pretrained/{run_dir_name(best)}/"
        "split-0/report/confusion.png)",
        "",
        "## The synthetic images",
        "",
        f"Variations kept per repeat: {kept} (of {recipe.per_image} per real image).",
        "Each row: a real training image of the first repeat, then its kept variations:",
        "",
        "![real images and their variations](variations.png)",
        "",
        "## Classic augmentation",
        "",
        "![preview: originals on the left, augmented versions to the right](preview.png)",
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
