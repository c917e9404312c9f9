"""``augment tune``: which classic augmentation suits *this* data, found under a time budget.

The presets assume ImageNet-like photos (``light`` flips every other image, which is wrong for
digits, text or anything with a handedness). :func:`tune` searches, on repeated stratified
splits of the user's folder only, a space a person would try:

1. **screening** (cheap, many candidates): "no augmentation", every preset, and one-factor
   variations of the default preset (horizontal flip off, vertical flip on, rotation range,
   colour strength, random-resized-crop scale, erasing, RandAugment magnitudes); then the
   combination of each family's best level. Each candidate is scored by a linear probe on
   frozen features: the clean image plus ``views - 1`` augmented copies per training image
   (the feature cache computes each image's views once, whatever the split), tested on the
   split's clean held-out images. Seconds per candidate.
2. **confirmation** (exact, few): short fine-tuning runs of the default and the winner on the
   same splits (:func:`transfer.comparison.compare`), when the budget left holds at least two
   splits of both.

It reports every candidate with its paired difference to "no augmentation" and to the default
preset (95% CIs, Nadeau-Bengio corrected for the resampled splits), writes the winner as a
pipeline file for ``finetune --pipeline``, and keeps the default when no candidate is
distinguishable from it. It also measures flip test-time augmentation on the winner and
recommends it only where mirrored views do not hurt. Finished candidates are kept in
``candidates.jsonl`` and reused by a rerun with the same data and settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from augmentor.io import atomic_write_text
from augmentor.ops.base import Node
from augmentor.ops.color import ColorJitter
from augmentor.ops.erasing import RandomErasing
from augmentor.ops.geometric import HorizontalFlip, RandomResizedCrop, Rotate, VerticalFlip
from augmentor.ops.policies import RandAugment
from augmentor.pipeline import Pipeline
from augmentor.presets import PRESETS, preset
from augmentor.seeding import global_seed
from transfer.backbones import Backbone, create_backbone
from transfer.config import FinetuneConfig, TuneConfig
from transfer.errors import DataError
from transfer.evaluate import Interval, mean_interval
from transfer.features import FeatureCache
from transfer.images import LabelledImages, load_folder
from transfer.preprocess import PreprocessModule
from transfer.probe import fit_linear_probe
from transfer.splits import check_classes, repeated_splits

log = logging.getLogger(__name__)

__all__ = ["Recipe", "TuneResult", "tune"]

DEFAULT = "preset:light"  # the baseline every candidate is compared with (finetune's default)
NONE = "none"
CANDIDATES_FILE = "candidates.jsonl"


@dataclass(frozen=True)
class Recipe:
    """A point of the family space: each field one op family (0 / None = off)."""

    hflip: float = 0.0
    vflip: float = 0.0
    rotate: float = 0.0  # degrees, applied with p = 0.5
    color: float = 0.0  # brightness/contrast (and saturation) strength, p = 0.5
    crop: float | None = None  # random-resized-crop minimum scale
    erasing: float = 0.0  # random-erasing probability
    randaugment: int = 0  # RandAugment magnitude (0 = off)

    def ops(self) -> list[Node]:
        ops: list[Node] = []
        if self.crop is not None:
            ops.append(RandomResizedCrop(None, scale=(self.crop, 1.0)))
        if self.hflip:
            ops.append(HorizontalFlip(p=self.hflip))
        if self.vflip:
            ops.append(VerticalFlip(p=self.vflip))
        if self.rotate:
            ops.append(Rotate(self.rotate, p=0.5))
        if self.color:
            c = self.color
            ops.append(ColorJitter(brightness=c, contrast=c, saturation=c, p=0.5))
        if self.randaugment:
            ops.append(RandAugment(num_ops=2, magnitude=self.randaugment))
        if self.erasing:
            ops.append(RandomErasing(p=self.erasing))
        return ops


# the default preset ``light`` as a recipe: the centre of the one-factor variations
BASE = Recipe(hflip=0.5, rotate=10.0, color=0.1)
# each family's levels tried around BASE (BASE's own level is always among them)
FAMILIES: dict[str, list[Any]] = {
    "hflip": [0.0, 0.5],
    "vflip": [0.0, 0.5],
    "rotate": [0.0, 10.0, 30.0],
    "color": [0.0, 0.1, 0.4],
    "crop": [None, 0.6, 0.35],
    "erasing": [0.0, 0.3],
    "randaugment": [0, 5, 13],
}


def recipe_name(r: Recipe) -> str:
    if r == BASE:
        return DEFAULT
    parts = [f"{f}={getattr(r, f)}" for f in FAMILIES if getattr(r, f) != getattr(BASE, f)]
    return "light[" + ",".join(parts) + "]"


def first_round() -> dict[str, Pipeline | None]:
    """ "No augmentation", every preset (the default first), and BASE's one-factor variations."""
    out: dict[str, Pipeline | None] = {NONE: None, DEFAULT: preset("light")}
    for name in PRESETS.list():
        out.setdefault(f"preset:{name}", preset(name))
    for family, levels in FAMILIES.items():
        for level in levels:
            r = replace(BASE, **{family: level})
            out.setdefault(recipe_name(r), Pipeline(r.ops()))
    return out


@dataclass
class Scored:
    name: str
    pipeline: dict[str, Any] | None
    scores: list[float]  # accuracy per split
    stage: str = "screening"


@dataclass
class TuneResult:
    """What :func:`tune` found (also in ``tune.json``)."""

    winner: str
    pipeline: dict[str, Any] | None
    candidates: list[Scored]
    paired_to_default: dict[str, Interval]
    paired_to_none: dict[str, Interval]
    distinguishable: bool
    tta: str
    tta_gain: Interval
    confirmation: dict[str, Any] | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    mixing: bool = True  # keep finetune's MixUp/CutMix (off only when confirmation says so)

    def finetune_flags(self, pipeline_path: str) -> str:
        """The ``augment finetune`` options that use what tune found."""
        flags = f"--pipeline {pipeline_path} --tta {self.tta}"
        return flags + ("" if self.mixing else " --mixup 0 --cutmix 0")

    def table(self) -> str:
        rows = sorted(self.candidates, key=lambda c: -float(np.mean(c.scores)))
        lines = [
            "| candidate | accuracy (%, mean) | to none (points, 95% CI) | "
            f"to default {DEFAULT} (points, 95% CI) |",
            "|---|---|---|---|",
        ]
        for c in rows:
            to_none = self.paired_to_none.get(c.name)
            to_def = self.paired_to_default.get(c.name)
            lines.append(
                f"| {c.name}{' (winner)' if c.name == self.winner else ''} | "
                f"{np.mean(c.scores) * 100:.1f} | "
                f"{to_none.format_range() if to_none else '-'} | "
                f"{to_def.format_range() if to_def else 'baseline' if c.name == DEFAULT else '-'}"
                " |"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": self.winner,
            "pipeline": self.pipeline,
            "distinguishable": self.distinguishable,
            "tta": self.tta,
            "tta_gain": self.tta_gain.to_dict(),
            "candidates": [c.__dict__ for c in self.candidates],
            "paired_to_default": {k: v.to_dict() for k, v in self.paired_to_default.items()},
            "paired_to_none": {k: v.to_dict() for k, v in self.paired_to_none.items()},
            "confirmation": self.confirmation,
            "seconds": self.seconds,
            "notes": self.notes,
            "mixing": self.mixing,
        }


LinearFit = tuple[nn.Linear, torch.Tensor, torch.Tensor]  # head, feature mean, feature std


def fit_linear(x: torch.Tensor, y: torch.Tensor, k: int, l2: float = 1e-3) -> LinearFit:
    """The linear probe of :func:`transfer.probe.fit_linear_probe` on standardized features,
    60 L-BFGS iterations (screening fits one per candidate and split)."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    return fit_linear_probe((x - mean) / std, y, k, l2, max_iter=60), mean, std


def linear_probs(fit: LinearFit, x: torch.Tensor) -> torch.Tensor:
    head, mean, std = fit
    with torch.no_grad():
        return head((x - mean) / std).softmax(1)


class _Halves(nn.Module):
    """The last feature map averaged over its left and right halves, side by side."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.body.forward_features(x)  # type: ignore[operator]
        return F.adaptive_avg_pool2d(fmap, (1, 2)).flatten(1)


def screening_features(backbone: Backbone, input_size: int) -> Backbone:
    """The screening probe's features: the backbone's last map pooled over the left and the
    right half of the image (for timm models, which expose ``forward_features``).

    Globally pooled ImageNet features are close to mirror-invariant (their training flipped
    every other image), so a probe on them cannot see the one harm that matters most, a flip
    that turns an image into another class: on mirrored Fashion-MNIST footwear it scored "no
    augmentation" and the flipping default alike, while fine-tuning scored them 30 points
    apart. Pooling each half keeps where things are; the halves' mean is the pooled feature
    itself, so nothing is lost. Other backbones keep their pooled features."""
    if not hasattr(backbone.body, "forward_features"):
        return backbone
    halves = _Halves(backbone.body).eval()
    with torch.no_grad():
        n = int(halves(torch.zeros(1, 3, input_size, input_size)).shape[1])
    return Backbone(
        backbone.name + "[halves]", halves, n, backbone.preprocessing, [], backbone.source
    )


def _run_key(data: LabelledImages, config: TuneConfig) -> str:
    h = hashlib.sha256()
    for label, key in zip(data.labels, data.content_keys()):
        h.update(f"{int(label)}:{key};".encode())
    settings = {k: v for k, v in config.to_dict().items() if k not in ("minutes", "confirm_steps")}
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _read_done(path: Path, key: str) -> dict[str, Scored]:
    done: dict[str, Scored] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interruption
        if row.get("key") == key:
            done[row["name"]] = Scored(row["name"], row["pipeline"], row["scores"], row["stage"])
    return done


def tune(
    data: str | Path | LabelledImages,
    out: str | Path,
    config: TuneConfig | None = None,
    *,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> TuneResult:
    """Search the augmentation for ``data`` within ``config.minutes``; write ``out``.

    ``out`` receives ``candidates.jsonl`` (each finished candidate, reused on a rerun),
    ``tune.md`` (the table), ``tune.json`` and ``pipeline.yaml`` (the winner, for
    ``augment finetune --pipeline``). Only ``data`` is ever read: no test folder.
    """
    config = config or TuneConfig()
    t0 = time.perf_counter()
    deadline = t0 + config.minutes * 60
    out = Path(out)
    real = data if isinstance(data, LabelledImages) else load_folder(data)
    need = max(2, int(np.ceil(1 / config.test_fraction)))
    check_classes(
        real.labels, real.classes, need, f"to hold out {config.test_fraction:.0%} for scoring"
    )
    say = say or (lambda line: log.info("%s", line))
    ft = config.finetune_config()
    with global_seed(config.seed):  # a random-init backbone: keep the caller's state
        backbone = create_backbone(ft.backbone, ft.weights, ft.pretrained)
    pre = PreprocessModule(ft.preprocessing(backbone))
    backbone = screening_features(backbone.eval(), pre.input_size)
    cache = FeatureCache(out / "feature_cache")
    key = _run_key(real, config)
    done = _read_done(out / CANDIDATES_FILE, key)
    splits = repeated_splits(
        real.labels, config.repeats, config.test_fraction, config.seed, real.classes
    )

    # the cost of one candidate, measured on a few images before anything long runs
    probe_images = real.subset(np.arange(min(16, len(real))))
    t = time.perf_counter()
    FeatureCache(None).features(backbone, pre, probe_images)
    per_image = (time.perf_counter() - t) / len(probe_images)
    per_candidate = per_image * len(real) * (config.views - 1) * 1.2 + 0.2 * config.repeats
    clean_cost = per_image * len(real) * 2  # clean and mirrored features
    todo = [n for n in (NONE, DEFAULT) if n not in done]
    minimum = clean_cost + per_candidate * sum(n != NONE for n in todo) + 2
    if config.minutes * 60 < minimum:
        raise DataError(
            f"minutes must be at least {np.ceil(minimum / 6) / 10:.1f} to score two candidates "
            "on these "
            f"{len(real)} images at {pre.input_size} px (about {per_candidate:.0f} s each), "
            f"got {config.minutes:g}"
        )
    out.mkdir(parents=True, exist_ok=True)
    clean = cache.features(backbone, pre, real)[0]
    mirrored = _mirrored_features(cache, backbone, pre, real)
    labels = torch.from_numpy(real.labels)
    k = len(real.classes)

    def views_of(pipeline: dict[str, Any] | None) -> list[torch.Tensor]:
        """The training features of a candidate: the clean image, and with a pipeline its
        ``config.views`` feature views (view 0 clean), augmented with the search's seed."""
        if pipeline is None:
            return [clean]
        pipe = Pipeline(Pipeline.from_config(pipeline).ops, seed=config.seed)
        return list(cache.features(backbone, pre, real, config.views, pipe))

    def split_probes(views: list[torch.Tensor]) -> Iterator[tuple[LinearFit, np.ndarray]]:
        """Per split, the probe fitted on the training images' views, and the held-out part."""
        for tr, te in splits:
            x = torch.cat([v[tr] for v in views])
            yield fit_linear(x, labels[tr].repeat(len(views)), k), te

    def accuracy(probs: torch.Tensor, te: np.ndarray) -> float:
        return float((probs.argmax(1) == labels[te]).float().mean())

    def score(pipeline: dict[str, Any] | None) -> list[float]:
        return [
            accuracy(linear_probs(fit, clean[te]), te)
            for fit, te in split_probes(views_of(pipeline))
        ]

    scored: dict[str, Scored] = {}

    def run(name: str, pipe: Pipeline | None, stage: str) -> None:
        if name in scored:
            return
        if name in done:
            scored[name] = done[name]
            return
        cfg = pipe.get_config() if pipe is not None else None
        scored[name] = Scored(name, cfg, score(cfg), stage)
        row = {"key": key, **scored[name].__dict__}
        with open(out / CANDIDATES_FILE, "a") as f:  # one line per finished candidate
            f.write(json.dumps(row) + "\n")

    notes: list[str] = []
    candidates = first_round()
    bar = _bar(len(candidates) + 1, progress)
    skipped = 0
    for name, pipe in candidates.items():
        left = deadline - time.perf_counter()
        if name not in done and name not in (NONE, DEFAULT) and left < per_candidate:
            skipped += 1
            bar(f"{name} (no time)", left)
            continue
        t = time.perf_counter()
        run(name, pipe, "screening")
        if name not in done and pipe is not None:
            per_candidate = max(per_candidate * 0.5, time.perf_counter() - t)
        bar(name, deadline - time.perf_counter())
    # round 2: each family's best level together
    combined = _combine(scored)
    if combined is not None and deadline - time.perf_counter() > per_candidate:
        run(recipe_name(combined), Pipeline(combined.ops()), "combination")
    bar("combination", deadline - time.perf_counter())
    if skipped:
        notes.append(f"{skipped} candidates were not scored: the budget ran out.")

    ratio = _ratio(splits)
    base = scored[DEFAULT].scores
    nothing = scored[NONE].scores
    to_default = {
        n: mean_interval(np.subtract(c.scores, base).tolist(), ratio, bounds=(-1.0, 1.0))
        for n, c in scored.items()
        if n != DEFAULT
    }
    to_none = {
        n: mean_interval(np.subtract(c.scores, nothing).tolist(), ratio, bounds=(-1.0, 1.0))
        for n, c in scored.items()
        if n != NONE
    }
    best = max(scored, key=lambda n: float(np.mean(scored[n].scores)))
    distinguishable = best != DEFAULT and to_default[best].low > 0
    winner = best if distinguishable else DEFAULT

    # flip test-time augmentation on the winner: the probe's softmax averaged over the image
    # and its mirror, against the image alone, on the same splits
    gains = [
        accuracy((linear_probs(fit, clean[te]) + linear_probs(fit, mirrored[te])) / 2, te)
        - accuracy(linear_probs(fit, clean[te]), te)
        for fit, te in split_probes(views_of(scored[winner].pipeline))
    ]
    tta_gain = mean_interval(gains, ratio, bounds=(-1.0, 1.0))
    flips_hurt = _flips_hurt(to_default)
    tta = "flip" if tta_gain.mean > 0 and not flips_hurt else "none"

    confirmation = _confirm(real, out, config, scored[winner], deadline, per_image, notes, say)
    if confirmation is not None and confirmation.get("difference", {}).get("high", 0) < 0:
        notes.append(
            "The confirming fine-tuning runs found the winner worse than the default: the "
            "default is kept."
        )
        winner = DEFAULT
    pipeline = scored[winner].pipeline
    # mixing stays on (finetune's default) unless turning it off helped beyond noise
    mixing = not (confirmation is not None and confirmation["no_mixing"]["low"] > 0)
    result = TuneResult(
        winner, pipeline, list(scored.values()), to_default, to_none, distinguishable,
        tta, tta_gain, confirmation, time.perf_counter() - t0, notes, mixing,
    )  # fmt: skip
    _write(out, result, config)
    return result


def _bar(total: int, progress: bool) -> Callable[[str, float], None]:
    if not progress:
        return lambda name, left: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="tune", unit="candidate", dynamic_ncols=True)

    def step(name: str, left: float) -> None:
        bar.set_postfix_str(f"{name[:28]}, {max(0.0, left) / 60:.1f} min left")
        bar.update(1)
        if bar.n >= total:  # screening done: the confirmation's lines come after the bar
            bar.close()

    return step


def _ratio(splits: list[tuple[np.ndarray, np.ndarray]]) -> float:
    return float(np.mean([len(te) / len(tr) for tr, te in splits]))


def _mirrored_features(
    cache: FeatureCache, backbone: Any, pre: PreprocessModule, real: LabelledImages
) -> torch.Tensor:
    """Features of every image mirrored (a feature view of an always-flip pipeline)."""
    mirror = Pipeline([HorizontalFlip(p=1.0)], seed=0)
    return cache.features(backbone, pre, real, 2, mirror)[1]


def _combine(scored: dict[str, Scored]) -> Recipe | None:
    """Each family's best-scoring level (from BASE's one-factor variations) together."""
    levels: dict[str, Any] = {}
    for family, values in FAMILIES.items():
        best, best_score = getattr(BASE, family), float(np.mean(scored[DEFAULT].scores))
        for v in values:
            name = recipe_name(replace(BASE, **{family: v}))
            if name in scored and float(np.mean(scored[name].scores)) > best_score:
                best, best_score = v, float(np.mean(scored[name].scores))
        levels[family] = best
    combined = Recipe(**levels)
    changed = sum(levels[f] != getattr(BASE, f) for f in FAMILIES)
    return combined if changed >= 2 else None  # one change is a candidate already scored


def _flips_hurt(to_default: dict[str, Interval]) -> bool:
    """Did removing the default's horizontal flip help beyond noise?"""
    name = recipe_name(replace(BASE, hflip=0.0))
    return name in to_default and to_default[name].low > 0


NO_MIXING = " without MixUp/CutMix"


def _confirm(
    real: LabelledImages,
    out: Path,
    config: TuneConfig,
    winner: Scored,
    deadline: float,
    per_image: float,
    notes: list[str],
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """Short fine-tuning runs on the same splits: the default, the winner (when it is not the
    default) and the winner without MixUp/CutMix (mixing acts on fine-tuning batches, so
    the probe cannot screen it), if the budget left holds two splits of each. A training
    image costs about 3 forward passes."""
    if config.confirm_steps == 0:
        return None
    from transfer.comparison import compare

    steps = config.confirm_steps
    base = config.finetune_config(steps=steps, preset="light")
    tuned = config.finetune_config(steps=steps, preset=None, pipeline=winner.pipeline)
    configs: dict[str, FinetuneConfig] = {DEFAULT: base}
    if winner.name != DEFAULT:
        configs[winner.name] = tuned
    configs[winner.name + NO_MIXING] = replace(configs[winner.name], mixup=0.0, cutmix=0.0)
    run_cost = steps * 32 * per_image * 3.5 + len(real) * per_image * 2 + 5
    left = deadline - time.perf_counter()
    repeats = min(config.repeats, int(left // (len(configs) * run_cost)))
    if repeats < 2:
        notes.append(
            f"No confirming fine-tuning runs: two splits of {len(configs)} {steps}-step runs "
            f"need about {2 * len(configs) * run_cost / 60:.1f} minutes; the budget had "
            f"{max(0.0, left) / 60:.1f} left."
        )
        return None
    result = compare(
        real, configs, out / "confirm", repeats=repeats, test_fraction=config.test_fraction,
        seed=config.seed, progress=False,
    )  # fmt: skip
    found: dict[str, Any] = {"repeats": repeats, "steps": steps, "table": result.table()}
    if winner.name != DEFAULT:
        diff = result.difference(winner.name, DEFAULT)
        found["difference"] = diff.to_dict()
        say(f"confirmation, {winner.name} - default: {diff.format_range()} points")
    no_mix = result.difference(winner.name + NO_MIXING, winner.name)
    found["no_mixing"] = no_mix.to_dict()
    say(f"confirmation, without - with MixUp/CutMix: {no_mix.format_range()} points")
    return found


def _write(out: Path, result: TuneResult, config: TuneConfig) -> None:
    import yaml

    pipe = result.pipeline or {"version": 1, "seed": config.seed, "ops": []}
    atomic_write_text(out / "pipeline.yaml", yaml.safe_dump(pipe, sort_keys=False))
    payload = {"config": config.to_dict(), **result.to_dict()}
    atomic_write_text(out / "tune.json", json.dumps(payload, indent=2))
    md = ["# augment tune", "", summary_line(result), "", result.table(), ""]
    md.append(
        f"{len(next(iter(result.candidates)).scores)} repeated stratified splits, "
        f"{config.test_fraction:.0%} of each class held out; linear probe on frozen "
        f"{config.backbone} features with {config.views} views per training image; 95% CIs "
        "with the Nadeau-Bengio correction."
    )
    md += [
        "",
        f"Flip test-time augmentation on the winner: {result.tta_gain.format_range()} points "
        f"(recommended: --tta {result.tta}).",
    ]
    if result.confirmation:
        c = result.confirmation
        md += [
            "",
            f"## Confirmation: {c['repeats']} splits of {c['steps']}-step fine-tuning (lp-ft)",
            "",
            c["table"],
            "",
            f"MixUp/CutMix: {'kept' if result.mixing else 'off (it hurt here)'}.",
        ]
    md += [f"- {n}" for n in result.notes]
    atomic_write_text(out / "tune.md", "\n".join(md) + "\n")


def summary_line(result: TuneResult) -> str:
    if not result.distinguishable:
        best = max(result.candidates, key=lambda c: float(np.mean(c.scores)))
        if best.name == DEFAULT:
            return f"The default preset ({DEFAULT}) scored best: pipeline.yaml holds it."
        d = result.paired_to_default[best.name]
        return (
            f"No candidate is distinguishable from the default ({DEFAULT}): the best, "
            f"{best.name}, is {d.format_range()} points; pipeline.yaml holds the default."
        )
    d = result.paired_to_default[result.winner]
    return (
        f"{result.winner} beats the default ({DEFAULT}) by {d.format_range()} points: "
        "pipeline.yaml holds it."
    )
