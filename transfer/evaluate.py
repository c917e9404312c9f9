"""Metrics, confidence intervals and the report directory.

Confidence intervals over repeated random splits use the corrected resampled t-test of Nadeau
and Bengio (2003): the splits share training images, so the plain t interval is too narrow; the
variance is inflated by ``1/J + n_test/n_train``. Paired comparisons apply it to the per-split
differences of two configurations run on the same splits.

Why one module of ~460 lines: the statistics (intervals, power, repeats) and the report that
prints them change together; the plots are small helpers of that report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmentor.io import atomic_write_text, save_figure
from augmentor.trainer import read_metric_rows, versions
from transfer.data import predict_outputs
from transfer.images import LabelledImages
from transfer.preprocess import PreprocessModule

__all__ = [
    "Interval",
    "classification_metrics",
    "detectable_effect",
    "evaluate_model",
    "mean_interval",
    "repeats_for",
    "write_report",
]


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval."""

    mean: float
    low: float
    high: float
    std: float
    n: int
    level: float = 0.95
    clipped: bool = False  # a bound was cut to the metric's range

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def degenerate(self) -> bool:
        """No interval to speak of: fewer than 2 values, or no spread among them (a zero-width
        interval is an artefact of too few repeats, not certainty)."""
        return self.n < 2 or self.std == 0.0

    @property
    def excludes_zero(self) -> bool:
        """The interval lies on one side of 0 (only ever claimed from 3+ spread values)."""
        return not self.degenerate and self.n >= 3 and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "std": self.std,
            "n": self.n,
            "level": self.level,
            "half_width": self.half_width,
            "clipped": self.clipped,
        }

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.degenerate:
            return f"{self.mean * scale:.{digits}f} (no interval: {self.n} values without spread)"
        if self.clipped:  # an asymmetric interval: both ends
            return (
                f"{self.mean * scale:.{digits}f} [{self.low * scale:.{digits}f}, "
                f"{self.high * scale:.{digits}f}]"
            )
        return f"{self.mean * scale:.{digits}f} ± {self.half_width * scale:.{digits}f}"

    def format_range(self, scale: float = 100.0, digits: int = 1) -> str:
        """``+m [+lo, +hi]`` (signed, for differences)."""
        if self.degenerate:
            return f"{self.mean * scale:+.{digits}f} (no interval)"
        return (
            f"{self.mean * scale:+.{digits}f} [{self.low * scale:+.{digits}f}, "
            f"{self.high * scale:+.{digits}f}]"
        )


def mean_interval(
    values: Sequence[float],
    test_train_ratio: float | None = None,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> Interval:
    """Mean and t-interval of per-split scores (or of paired differences).

    Args:
        values: one score per split (at least 2).
        test_train_ratio: ``n_test / n_train`` of the splits for the Nadeau-Bengio correction;
            None for independent samples (plain t interval).
        level: the confidence level.
        bounds: clip the interval to these (an accuracy lies in [0, 1]; a difference of two
            does not need it).

    Example:
        >>> iv = mean_interval([0.80, 0.82, 0.84])
        >>> round(iv.mean, 2), iv.low < 0.82 < iv.high
        (0.82, True)
    """
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        raise ValueError(f"need at least 2 values for an interval, got {v.size}")
    mean = float(v.mean())
    std = float(v.std(ddof=1))
    factor = 1.0 / v.size + (test_train_ratio if test_train_ratio is not None else 0.0)
    se = math.sqrt(factor) * std
    t = float(stats.t.ppf(0.5 + level / 2, df=v.size - 1))
    low, high = mean - t * se, mean + t * se
    clipped = False
    if bounds is not None and (low < bounds[0] or high > bounds[1]):
        low, high, clipped = max(low, bounds[0]), min(high, bounds[1]), True
    return Interval(mean, low, high, std, int(v.size), level, clipped)


def detectable_effect(
    sd: float, n: int, test_train_ratio: float = 0.0, level: float = 0.95, power: float = 0.8
) -> float:
    """The smallest paired difference that ``n`` repeats with paired standard deviation ``sd``
    tell from zero with probability ``power`` (two-sided t-test at ``level``): ``(t_{1-a/2} +
    t_{power}) * sd * sqrt(1/n + ratio)``, ratio the Nadeau-Bengio term of resampled splits.

    Example:
        >>> round(detectable_effect(0.016, 5) * 100, 1)  # points, the demo's old paired SD
        2.7
    """
    from scipy import stats

    if n < 2 or sd <= 0:
        return math.inf if n < 2 else 0.0
    df = n - 1
    t = float(stats.t.ppf(0.5 + level / 2, df)) + float(stats.t.ppf(power, df))
    return t * sd * math.sqrt(1.0 / n + test_train_ratio)


def repeats_for(
    effect: float, sd: float, test_train_ratio: float = 0.0, most: int = 1000
) -> int | None:
    """The fewest repeats whose detectable effect (:func:`detectable_effect`) is at most
    ``effect``; None when none up to ``most`` is (the resampling term alone is too large)."""
    for n in range(2, most + 1):
        if detectable_effect(sd, n, test_train_ratio) <= effect:
            return n
    return None


TOP_LOSSES = 16  # images in a report's top-losses gallery
MOST_CONFUSED = 10  # rows of its most-confused pairs table


def classification_metrics(
    target: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, NLL, expected calibration error, per-class table,
    confusion matrix, the most confused (true, predicted) pairs and the top losses (the images
    the model gets most wrong: position, source when given, true and predicted class,
    confidence)."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    k = len(classes)
    p = torch.as_tensor(probs, dtype=torch.float32)
    y = torch.as_tensor(target, dtype=torch.long)
    pred = p.argmax(1)
    present = torch.bincount(y, minlength=k) > 0
    recall = multiclass_recall(pred, y, k, average="none")
    precision = multiclass_precision(pred, y, k, average="none")
    f1 = multiclass_f1_score(pred, y, k, average="none")
    from transfer.calibration import expected_calibration_error, nll

    ece = expected_calibration_error(p.numpy(), y.numpy()) if len(y) else 0.0
    support = torch.bincount(y, minlength=k)
    return {
        "n": int(len(y)),
        "accuracy": float(multiclass_accuracy(pred, y, k, average="micro")),
        # macro over the classes present in the target, so a missing class does not count as 0
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "nll": nll(p.numpy(), y.numpy()),
        "ece": ece,
        "per_class": [
            {
                "class": c,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        ],
        "confusion": (cm := multiclass_confusion_matrix(pred, y, k)).tolist(),
        "classes": list(classes),
        "most_confused": most_confused(cm.numpy(), classes),
        "top_losses": top_losses(p.numpy(), y.numpy(), classes, sources),
    }


def most_confused(
    confusion: np.ndarray, classes: Sequence[str], n: int = MOST_CONFUSED
) -> list[dict[str, Any]]:
    """The off-diagonal cells of a confusion matrix (rows true), largest first.

    Example:
        >>> most_confused(np.array([[5, 2], [0, 3]]), ["cat", "dog"])
        [{'true': 'cat', 'predicted': 'dog', 'count': 2}]
    """
    cells = [
        (int(confusion[t, q]), t, q)
        for t in range(len(classes))
        for q in range(len(classes))
        if t != q and confusion[t, q] > 0
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": classes[t], "predicted": classes[q], "count": c} for c, t, q in cells[:n]]


def top_losses(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    sources: Sequence[str] | None = None,
    n: int = TOP_LOSSES,
) -> list[dict[str, Any]]:
    """The ``n`` images with the largest loss (lowest probability of the true class)."""
    p_true = probs[np.arange(len(labels)), labels]
    order = np.argsort(p_true, kind="stable")[:n]
    rows = []
    for i in order.tolist():
        pred = int(probs[i].argmax())
        row = {
            "index": i,
            "true": classes[int(labels[i])],
            "predicted": classes[pred],
            "confidence": float(probs[i, pred]),
            "p_true": float(p_true[i]),
            "loss": float(-np.log(max(p_true[i], 1e-12))),
        }
        if sources is not None:
            row["source"] = str(sources[i])
        rows.append(row)
    return rows


def predict_probs(
    model: torch.nn.Module, preprocess: PreprocessModule, data: LabelledImages, batch_size: int = 64
) -> np.ndarray:
    """Softmax probabilities of ``model`` on ``data`` (model in eval mode, on its device)."""
    logits = predict_outputs(model, preprocess, data, batch_size)
    return torch.from_numpy(logits).softmax(1).numpy()


def evaluate_model(
    model: torch.nn.Module, preprocess: PreprocessModule, data: LabelledImages
) -> dict[str, Any]:
    probs = predict_probs(model, preprocess, data)
    return classification_metrics(data.labels, probs, data.classes, data.sources)


# the libraries that shape a fine-tuning result, recorded in its report
VERSIONS = ("smallaug", "torch", "torchvision", "lightning", "timm", "torchmetrics", "numpy")


def _read_csv_logs(logs: Path) -> dict[str, list[dict[str, float]]]:
    """Per-stage, per-epoch rows of Lightning's CSVLogger files under ``logs/<stage>/``."""
    stages: dict[str, list[dict[str, float]]] = {}
    for path in sorted(logs.glob("*/metrics.csv")):
        by_epoch: dict[int, dict[str, float]] = {}
        for row in read_metric_rows(path.parent):  # resumed runs: every part, in order
            if not row.get("epoch"):
                continue
            e = int(float(row["epoch"]))
            for k, v in row.items():
                if v not in (None, "") and k not in ("epoch", "step"):
                    by_epoch.setdefault(e, {})[k] = float(v)
        stages[path.parent.name] = [dict(epoch=e, **by_epoch[e]) for e in sorted(by_epoch)]
    return stages


def _losses_grid(path: Path, rows: list[dict[str, Any]], images: LabelledImages) -> bool:
    """The top-losses images in a row of captioned cells (matplotlib, like the other plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(rows), 8)
    lines = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(lines, cols, figsize=(1.6 * cols, 1.9 * lines), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, rows):
        img = images.images[r["index"]]
        ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{r['true']}\n-> {r['predicted']} {r['confidence']:.2f}", fontsize=7)
    fig.tight_layout()
    save_figure(path, fig)
    return True


def plot_confusion(path: Path, confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k), dpi=100)
    rows = cm.sum(1, keepdims=True)
    ax.imshow(cm / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                color = "white" if cm[i, j] > 0.5 * max(rows[i, 0], 1) else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    save_figure(path, fig)


def plot_curves(path: Path, stages: dict[str, list[dict[str, float]]]) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = ["probe", "finetune"]
    names = sorted(stages, key=lambda k: (order.index(k) if k in order else len(order), k))
    stages = {k: stages[k] for k in names if stages[k]}
    if not stages:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    offset = 0.0
    for stage, rows in stages.items():
        epochs = [offset + r["epoch"] + 1 for r in rows]
        for key, ax, style in (
            ("train/loss", axes[0], "-"),
            ("val/loss", axes[0], "--"),
            ("train/acc", axes[1], "-"),
            ("val/acc", axes[1], "--"),
        ):
            pts = [(e, r[key]) for e, r in zip(epochs, rows) if key in r]
            if pts:
                ax.plot(*zip(*pts), style, label=f"{stage} {key}")
        offset = epochs[-1]
    axes[0].set_title("loss")
    axes[1].set_title("accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(path, fig)
    return True


def calibration_lines(calib: dict[str, Any] | None, out: Path) -> list[str]:
    """The report's paragraph on test-time views and the temperature."""
    if not calib:
        return []
    views = {"none": "no test-time views", "flip": "the image and its mirror averaged"}
    lines = [
        "",
        f"Served probabilities: {views.get(calib['tta'], calib['tta'] + ' views averaged')}",
    ]
    if calib.get("fitted_on", "none") != "none":
        lines[-1] += (
            f", temperature {calib['temperature']:.3f} fitted on {calib.get('n') or 'the'} "
            f"{calib['fitted_on']} predictions"
        )
        if calib.get("nll_before") is not None and calib.get("nll_after") is not None:
            lines[-1] += f" (NLL there {calib['nll_before']:.4f} -> {calib['nll_after']:.4f})"
        lines[-1] += "."
    else:
        lines[-1] += f"; {calib.get('note') or 'temperature 1 (not calibrated)'}."
    if "ece_before" in calib:
        lines += [
            "",
            f"Expected calibration error on the {calib['scored_on']} images: "
            f"{calib['ece_before']:.4f} before the temperature, {calib['ece_after']:.4f} after.",
        ]
    if (out / "reliability.png").is_file():
        lines += ["", "![reliability diagram](reliability.png)"]
    return lines


def write_report(
    out: str | Path,
    metrics: dict[str, Any],
    classes: Sequence[str],
    config: dict[str, Any],
    logs: str | Path | None = None,
    title: str = "",
    extra: dict[str, Any] | None = None,
    images: LabelledImages | None = None,
) -> Path:
    """Write ``metrics.json``, ``per_class.csv``, ``confusion.png``, ``curves.png`` (when logs
    exist), ``top_losses.png`` (when the scored ``images`` are given), ``config.json`` (with
    seed and versions) and ``report.md`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in metrics.items()}
    payload.update(extra or {})
    atomic_write_text(out / "metrics.json", json.dumps(payload, indent=2))
    lines = ["class,precision,recall,f1,support"]
    lines += [
        f"{r['class']},{r['precision']:.4f},{r['recall']:.4f},{r['f1']:.4f},{r['support']}"
        for r in metrics["per_class"]
    ]
    atomic_write_text(out / "per_class.csv", "\n".join(lines) + "\n")
    plot_confusion(out / "confusion.png", metrics["confusion"], classes)
    has_curves = plot_curves(out / "curves.png", _read_csv_logs(Path(logs))) if logs else False
    resolved = {"config": config, "seed": config.get("seed"), "versions": versions(VERSIONS)}
    atomic_write_text(out / "config.json", json.dumps(resolved, indent=2, default=str))
    md = [f"# {title or 'Evaluation'}", ""]
    md += [
        f"{extra.get('split', 'evaluation') if extra else 'evaluation'} set: {metrics['n']} images",
        "",
    ]
    if extra and extra.get("kept"):
        md += [f"Model kept: {extra['kept']}.", ""]
    if extra and extra.get("lr_scale", 1.0) != 1.0:
        md += [
            f"A short run: fine-tuning rates were scaled by {extra['lr_scale']:.3g} "
            "(fewer than 180 optimizer steps).",
            "",
        ]
    md += ["| metric | value |", "|---|---|"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "nll", "ece"):
        if key in metrics:
            md.append(f"| {key} | {metrics[key]:.4f} |")
    md += calibration_lines(extra.get("calibration") if extra else None, out)
    md += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    md += [
        f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
        f"{r['support']} |"
        for r in metrics["per_class"]
    ]
    md += ["", "![confusion matrix](confusion.png)"]
    if metrics.get("most_confused"):
        md += ["", "Most confused (true -> predicted):", "", "| true | predicted | images |"]
        md += ["|---|---|---|"]
        md += [
            f"| {r['true']} | {r['predicted']} | {r['count']} |" for r in metrics["most_confused"]
        ]
    losses = [r for r in metrics.get("top_losses", []) if r["true"] != r["predicted"]]
    if losses and images is not None and _losses_grid(out / "top_losses.png", losses, images):
        md += [
            "",
            "Top losses: the images the model gets most wrong (true / predicted, confidence):",
            "",
            "![top losses](top_losses.png)",
            "",
            "| # | image | true | predicted | confidence |",
            "|---|---|---|---|---|",
        ]
        md += [
            f"| {n + 1} | `{r.get('source', r['index'])}` | {r['true']} | {r['predicted']} | "
            f"{r['confidence']:.2f} |"
            for n, r in enumerate(losses)
        ]
    if has_curves:
        md += ["", "![learning curves](curves.png)"]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    return out
