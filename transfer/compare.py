"""Did it help? Several fine-tuning configurations on the same repeated stratified splits.

Every configuration trains on the same training part of each split and is tested on the same
held-out part (synthetic images, when a configuration has them, join its training part only).
The result is each configuration's mean test score with a 95% CI, and each configuration's
paired difference to the first one (the baseline) with its CI, both with the Nadeau-Bengio
correction for overlapping training sets. Finished (configuration, split) runs are kept on
disk and reused, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from augmentor.io import atomic_write_text
from transfer.data import LabelledImages, load_folder, repeated_splits
from transfer.evaluate import Interval, mean_interval
from transfer.finetune import FinetuneConfig, finetune

log = logging.getLogger(__name__)

__all__ = ["Comparison", "compare"]

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass
class Comparison:
    """Per-split scores, per-configuration intervals and paired differences to the baseline."""

    names: list[str]
    scores: dict[str, list[dict[str, float]]]
    summary: dict[str, dict[str, Interval]]
    paired: dict[str, dict[str, Interval]]
    test_train_ratio: float

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
                diff = f"{d.mean * 100:+.1f} [{d.low * 100:+.1f}, {d.high * 100:+.1f}]" + (
                    " *" if d.low > 0 or d.high < 0 else ""
                )
            lines.append(f"| {name} | {s.format()} | {diff} |")
        n = len(self.scores[base])
        lines.append("")
        lines.append(
            f"{n} repeated stratified splits; CIs use the corrected resampled t-test "
            f"(Nadeau & Bengio), n_test/n_train = {self.test_train_ratio:.2f}; "
            "* = the difference's CI excludes 0."
        )
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
        }


def _done(run: Path, config: FinetuneConfig) -> dict[str, float] | None:
    """The test scores of a finished run with the same config, else None."""
    metrics, cfg = run / "report" / "metrics.json", run / "config.json"
    if not (metrics.is_file() and cfg.is_file()):
        return None
    try:
        if json.loads(cfg.read_text()) != json.loads(json.dumps(config.to_dict())):
            return None
        m = json.loads(metrics.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if m.get("split") != "test":
        return None
    return {k: float(m[k]) for k in METRICS}


def compare(
    data: str | Path | LabelledImages,
    configs: Mapping[str, FinetuneConfig],
    out: str | Path,
    repeats: int = 5,
    test_fraction: float = 0.3,
    seed: int = 0,
    progress: bool = False,
    on_run: Callable[[str, int, dict[str, float]], None] | None = None,
) -> Comparison:
    """Run each configuration on the same ``repeats`` stratified splits and compare them.

    Args:
        data: an ImageFolder directory or decoded images.
        configs: name -> config; the first is the baseline of the paired differences.
        out: the comparison directory (one run directory per configuration and split).
        repeats: number of splits (>= 2).
        test_fraction: share of each class held out for testing in each split.
        seed: seeds the splits (each config keeps its own training seed).
        progress: Lightning progress bars.
        on_run: called after each (configuration, split) with its test scores.
    """
    if len(configs) < 1:
        raise ValueError("compare needs at least one configuration")
    out = Path(out)
    real = data if isinstance(data, LabelledImages) else load_folder(data)
    splits = repeated_splits(real.labels, repeats, test_fraction, seed, real.classes)
    n_test = float(np.mean([len(te) for _, te in splits]))
    n_train = float(np.mean([len(tr) for tr, _ in splits]))
    ratio = n_test / n_train
    names = list(configs)
    scores: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for r, (train_idx, test_idx) in enumerate(splits):
        for name in names:
            config = configs[name]
            if config.cache_dir is None:  # one cache for all runs: same images, same backbone
                config = replace(config, cache_dir=str(out / "feature_cache"))
            run = out / _slug(name) / f"split-{r}"
            got = _done(run, config)
            if got is None:
                # an interrupted run resumes; a stale one (other config) is replaced
                last = run / "checkpoints" / "last.ckpt"
                partial = last.is_file() and not (run / "config.json").is_file()
                result = finetune(
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
                assert result.test_metrics is not None
                got = {k: float(result.test_metrics[k]) for k in METRICS}
            else:
                log.info("reusing finished run %s", run)
            scores[name].append(got)
            if on_run is not None:
                on_run(name, r, got)
    summary = {
        n: {m: mean_interval([s[m] for s in scores[n]], ratio) for m in METRICS} for n in names
    }
    base = names[0]
    paired = {
        n: {
            m: mean_interval([a[m] - b[m] for a, b in zip(scores[n], scores[base])], ratio)
            for m in METRICS
        }
        for n in names[1:]
    }
    result = Comparison(names, scores, summary, paired, ratio)
    atomic_write_text(out / "comparison.json", json.dumps(result.to_dict(), indent=2))
    atomic_write_text(out / "comparison.md", "# Comparison\n\n" + result.table() + "\n")
    return result


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "config"
