"""Did it help? Several fine-tuning configurations on the same repeated stratified splits.

Every configuration trains on the same training part of each split and is tested on the same
held-out part (synthetic images, when a configuration has them, join its training part only).
The result is each configuration's mean test score with a 95% CI, and each configuration's
paired difference to the first one (the baseline) with its CI. Two designs:

- resampled splits of one folder (``test=None``): each split holds out ``test_fraction`` of
  every class; CIs carry the Nadeau-Bengio correction for overlapping training sets;
- a fixed test set (``test=...``): each repeat draws ``train_per_class`` training images per
  class from ``data`` (the few-shot question: "I have 20 images per class"), and every run is
  tested on all of ``test``. CIs are t-intervals over the repeats: they cover the draw of the
  training images and the training randomness, not the sampling of the test set itself.

A configuration may be a function of the split (``(split index, training images) -> config``),
for example to train a generator on that split's training images only, so that synthetic
images never carry information from a test image. Each repeat trains with seed
``config.seed + split index``. Finished (configuration, split) runs are kept on disk and
reused, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from augmentor.io import atomic_write_text
from transfer.config import FinetuneConfig
from transfer.errors import DataError
from transfer.evaluate import Interval, detectable_effect, mean_interval, repeats_for
from transfer.finetuning import finetune
from transfer.images import LabelledImages, load_folder
from transfer.splits import check_repeats, per_class_draws, repeated_splits

log = logging.getLogger(__name__)

__all__ = ["Comparison", "compare", "run_dir_name"]

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")

SPLIT_FILE = "split.txt"  # the split's key, written when a run has finished

ConfigSpec = FinetuneConfig | Callable[[int, LabelledImages], FinetuneConfig]


@dataclass
class Comparison:
    """Per-split scores, per-configuration intervals and paired differences to the baseline."""

    names: list[str]
    scores: dict[str, list[dict[str, float]]]
    summary: dict[str, dict[str, Interval]]
    paired: dict[str, dict[str, Interval]]
    test_train_ratio: float
    design: str = "resampled splits"
    n_train: float = 0.0
    n_test: float = 0.0
    notes: list[str] = field(default_factory=list)
    # (a, b) pairs whose paired difference a - b the table reports with its power
    contrasts: list[tuple[str, str]] = field(default_factory=list)

    def difference(self, a: str, b: str, metric: str = "accuracy") -> Interval:
        """The paired difference ``a - b`` over the repeats, with its 95% CI."""
        values = [x[metric] - y[metric] for x, y in zip(self.scores[a], self.scores[b])]
        ratio = self.test_train_ratio if self.design != "fixed test set" else None
        return mean_interval(values, ratio, bounds=(-1.0, 1.0))

    def power_line(self, a: str, b: str, metric: str = "accuracy") -> str:
        """``a - b``: the difference, its CI, the half-width, the effect the repeats could
        detect (80% power) and, when that is over a point, how many repeats a point needs."""
        d = self.difference(a, b, metric)
        ratio = self.test_train_ratio if self.design != "fixed test set" else 0.0
        mde = detectable_effect(d.std, d.n, ratio)
        line = (
            f"{a} - {b}: {d.format_range()} points (half-width {d.half_width * 100:.2f}; "
            f"detectable at 80% power: {mde * 100:.2f})"
        )
        if mde > 0.01:
            need = repeats_for(0.01, d.std, ratio)
            more = f"about {need}" if need else "no number of"
            line += (
                f"; {d.n} repeats are too few to tell a 1-point difference from zero "
                f"({more} repeats would)"
            )
        return line

    def table(self, metric: str = "accuracy") -> str:
        """A Markdown table of ``metric`` (in %) with 95% CIs and paired differences."""
        base = self.names[0]
        lines = [
            f"| configuration | {metric} (%, mean ± 95% CI) | difference to {base} (points) |",
            "|---|---|---|",
        ]
        for name in self.names:
            s = self.summary[name][metric]
            if name == base:
                diff = "baseline"
            else:
                d = self.paired[name][metric]
                diff = d.format_range() + (" *" if d.excludes_zero else "")
            lines.append(f"| {name} | {s.format()} | {diff} |")
        n = len(self.scores[base])
        lines.append("")
        if n < 3:
            lines.append(
                f"Only {n} repeats: too few for an interval to tell a difference from noise "
                "(use 3 or more; no difference is marked)."
            )
        if self.design == "fixed test set":
            lines.append(
                f"{n} repeats, each training on a new stratified draw of {self.n_train:.0f} "
                f"images and testing on the same {self.n_test:.0f}; 95% t-intervals over the "
                "repeats; * = the difference's CI excludes 0."
            )
        else:
            lines.append(
                f"{n} repeated stratified splits; CIs use the corrected resampled t-test "
                f"(Nadeau & Bengio), n_test/n_train = {self.test_train_ratio:.2f}; "
                "* = the difference's CI excludes 0."
            )
        if self.contrasts:
            lines.append("")
            lines += [f"- {self.power_line(a, b, metric)}" for a, b in self.contrasts]
        lines += self.notes
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "scores": self.scores,
            "summary": {
                n: {m: iv.to_dict() for m, iv in d.items()} for n, d in self.summary.items()
            },
            "paired": {n: {m: iv.to_dict() for m, iv in d.items()} for n, d in self.paired.items()},
            "test_train_ratio": self.test_train_ratio,
            "design": self.design,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "notes": self.notes,
            "contrasts": [
                {
                    "a": a,
                    "b": b,
                    **self.difference(a, b).to_dict(),
                    "detectable_80": detectable_effect(
                        self.difference(a, b).std,
                        len(self.scores[a]),
                        self.test_train_ratio if self.design != "fixed test set" else 0.0,
                    ),
                }
                for a, b in self.contrasts
            ],
        }


def _split_key(data: LabelledImages, train_idx: np.ndarray, test_idx: np.ndarray) -> str:
    """Which images a run trained and was tested on (by content)."""
    keys = data.content_keys()
    h = hashlib.sha256()
    for part in (train_idx, test_idx):
        h.update(",".join(keys[int(i)] for i in part).encode() + b"|")
    return h.hexdigest()


def _done(run: Path, config: FinetuneConfig, split: str) -> dict[str, float] | None:
    """The test scores of a finished run with the same config and split, else None."""
    metrics, cfg = run / "report" / "metrics.json", run / "config.json"
    if not (metrics.is_file() and cfg.is_file()):
        return None
    try:
        if json.loads(cfg.read_text()) != json.loads(json.dumps(config.to_dict())):
            return None
        if (run / SPLIT_FILE).read_text() != split:
            return None
        m = json.loads(metrics.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if m.get("split") != "test":
        return None
    return {k: float(m[k]) for k in METRICS}


def compare(
    data: str | Path | LabelledImages,
    configs: Mapping[str, ConfigSpec],
    out: str | Path,
    repeats: int = 5,
    test_fraction: float = 0.3,
    seed: int = 0,
    progress: bool = False,
    on_run: Callable[[str, int, dict[str, float]], None] | None = None,
    *,
    test: str | Path | LabelledImages | None = None,
    train_per_class: int | None = None,
    contrasts: Sequence[tuple[str, str]] = (),
) -> Comparison:
    """Run each configuration on the same ``repeats`` splits and compare them.

    Args:
        data: an ImageFolder directory or decoded images.
        configs: name -> config, or name -> ``f(split index, training images) -> config``;
            the first is the baseline of the paired differences.
        out: the comparison directory (one run directory per configuration and split).
        repeats: number of splits (>= 2).
        test_fraction: share of each class held out for testing in each split (without
            ``test``).
        seed: seeds the splits; run ``r`` of a configuration trains with ``config.seed + r``.
        progress: Lightning progress bars.
        on_run: called after each (configuration, split) with its test scores.
        test: a fixed test set (folder or images, same classes as ``data``) that every run is
            tested on; ``data`` then only provides training images.
        train_per_class: with ``test``, the training images drawn per class in each repeat
            (default: all of ``data``, and the repeats differ by their training seed only).
        contrasts: pairs ``(a, b)`` of configuration names whose paired difference ``a - b``
            the table reports with its half-width and detectable effect.
    """
    if len(configs) < 1:
        raise ValueError("compare needs at least one configuration")
    out = Path(out)
    real = data if isinstance(data, LabelledImages) else load_folder(data)
    if test is None:
        if train_per_class is not None:
            raise DataError("train_per_class needs a fixed test set (test=...)")
        splits = repeated_splits(real.labels, repeats, test_fraction, seed, real.classes)
        design = "resampled splits"
    else:
        held = test if isinstance(test, LabelledImages) else load_folder(test, real.classes)
        n_pool = len(real)
        real = real.join(held)
        test_idx = np.arange(n_pool, len(real))
        if train_per_class is None:
            check_repeats(repeats)
            draws = [np.arange(n_pool)] * repeats
        else:
            draws = per_class_draws(
                real.labels[:n_pool], train_per_class, repeats, seed, real.classes
            )
        splits = [(tr, test_idx) for tr in draws]
        design = "fixed test set"
    n_test = float(np.mean([len(te) for _, te in splits]))
    n_train = float(np.mean([len(tr) for tr, _ in splits]))
    # Nadeau-Bengio's n_test/n_train term corrects for test sets resampled from one pool;
    # with one fixed test set the repeats are plain t-interval samples
    ratio = n_test / n_train if test is None else 0.0
    names = list(configs)
    scores: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    notes: list[str] = []
    for r, (train_idx, test_idx) in enumerate(splits):
        split_key = _split_key(real, train_idx, test_idx)
        for name in names:
            spec = configs[name]
            config = spec if isinstance(spec, FinetuneConfig) else spec(r, real.subset(train_idx))
            config = replace(config, seed=config.seed + r)
            config, note = with_views_for_linear(config)
            if note and note not in notes:
                notes.append(note)
            if config.cache_dir is None:  # one cache for all runs: same images, same backbone
                config = replace(config, cache_dir=str(out / "feature_cache"))
            run = out / run_dir_name(name) / f"split-{r}"
            got = _done(run, config, split_key)
            if got is None:
                # an interrupted run resumes; a stale one (other config) is replaced
                last = run / "checkpoints" / "last.ckpt"
                partial = last.is_file() and not (run / "config.json").is_file()
                run_result = finetune(
                    real,
                    run,
                    config,
                    train_index=train_idx,
                    test_index=test_idx,
                    progress=progress,
                    export=False,
                    resume=partial,
                    overwrite=not partial,
                )
                assert run_result.test_metrics is not None  # test_index was given
                got = {k: float(run_result.test_metrics[k]) for k in METRICS}
                atomic_write_text(run / SPLIT_FILE, split_key)
            else:
                log.info("reusing finished run %s", run)
            scores[name].append(got)
            if on_run is not None:
                on_run(name, r, got)
    summary = {
        n: {m: mean_interval([s[m] for s in scores[n]], ratio, bounds=(0.0, 1.0)) for m in METRICS}
        for n in names
    }
    base = names[0]
    paired = {
        n: {
            m: mean_interval(
                [a[m] - b[m] for a, b in zip(scores[n], scores[base])], ratio, bounds=(-1.0, 1.0)
            )
            for m in METRICS
        }
        for n in names[1:]
    }
    result = Comparison(
        names, scores, summary, paired, ratio, design, n_train, n_test, notes, list(contrasts)
    )
    atomic_write_text(out / "comparison.json", json.dumps(result.to_dict(), indent=2))
    atomic_write_text(out / "comparison.md", "# Comparison\n\n" + result.table() + "\n")
    return result


LINEAR_VIEWS = 8  # augmented feature views per image when a linear probe is given augmentation


def with_views_for_linear(config: FinetuneConfig) -> tuple[FinetuneConfig, str | None]:
    """A linear probe learns from cached features: its classic augmentation only acts through
    augmented feature views. With one view it would be ignored and "real + classic" would
    equal "real only" by construction; so such a config gets ``LINEAR_VIEWS`` views, and the
    comparison says so."""
    augmented = config.preset is not None or config.pipeline is not None
    if config.strategy != "linear" or not augmented or config.feature_views > 1:
        return config, None
    note = (
        f"Linear probe: the classic augmentation enters as {LINEAR_VIEWS} augmented feature "
        "views per image (with one view it would not act at all)."
    )
    return replace(config, feature_views=LINEAR_VIEWS), note


def run_dir_name(name: str) -> str:
    """The directory of a configuration's runs, ``<out>/<run_dir_name(name)>/split-<r>``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "config"
