"""What the served model does after the classifier: test-time augmentation and temperature.

:class:`Served` wraps a classifier (normalized input -> logits) and returns probabilities: the
softmax averaged over the TTA views (``none``: the image; ``flip``: it and its mirror;
``flip+scale``: those two and both zoomed in by ``1 / SCALE_CROP``), then sharpened or softened
by a temperature: ``softmax(log(mean_v softmax(z_v)) / T)``. The temperature acts on the log of
the *averaged* probabilities, so it is monotone in each class's score and never changes the
predicted class (a temperature inside each view's softmax could). The same module is what the
report scores, what ``augment evaluate`` scores and what is exported (TorchScript and ONNX):
what was measured is what ships.

The temperature is fitted (Guo et al., 2017: one scalar, NLL on held-out predictions) on the
validation split, or on out-of-fold predictions of the same recipe when there is none. The
expected calibration error and the reliability diagram come from torchmetrics' binning
(15 equal-width bins of the top-class confidence, the usual choice).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from augmentor._validation import check_choice, check_number
from augmentor.io import atomic_write_text, read_json, save_figure
from transfer.config import TTA_MODES
from transfer.errors import RunError
from transfer.preprocess import PreprocessModule

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "Served",
    "expected_calibration_error",
    "fit_temperature",
    "plot_reliability",
    "read_calibration",
]

CALIBRATION_FILE = "calibration.json"
# the share of the input the "scale" views keep (then resized back): a 1.14x zoom, inside the
# range of a light random-resized-crop
SCALE_CROP = 0.875
ECE_BINS = 15
# a fitted temperature is kept inside this range (a file outside it is refused as tampered)
TEMPERATURE_RANGE = (0.05, 20.0)


class Served(nn.Module):
    """Classifier logits -> calibrated probabilities averaged over the TTA views.

    Args:
        classifier: normalized ``(N, 3, S, S)`` input -> ``(N, K)`` logits.
        input_size: S (the scale views crop and resize back to it).
        tta: one of :data:`transfer.config.TTA_MODES`.
        temperature: divides the log of the averaged probabilities (1 = unchanged).

    Example:
        >>> head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
        >>> served = Served(head, 8, "flip+scale", temperature=2.0)
        >>> x = torch.randn(5, 3, 8, 8)
        >>> len(served.views(x)), served(x).shape, served(x).sum(1).allclose(torch.ones(5))
        (4, torch.Size([5, 4]), True)
        >>> bool((served(x).argmax(1) == Served(head, 8, "flip+scale")(x).argmax(1)).all())
        True
    """

    def __init__(
        self, classifier: nn.Module, input_size: int, tta: str = "none", temperature: float = 1.0
    ) -> None:
        super().__init__()
        check_choice(None, "tta", tta, TTA_MODES)
        lo, hi = TEMPERATURE_RANGE
        check_number(None, "temperature", temperature, lo, hi)
        self.classifier = classifier
        self.flip = tta in ("flip", "flip+scale")
        self.scale = tta == "flip+scale"
        self.size = int(input_size)
        self.crop = max(1, int(round(input_size * SCALE_CROP)))
        self.temperature = float(temperature)

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        if self.flip:
            out.append(x.flip(-1))
        if self.scale:
            top = (self.size - self.crop) // 2
            zoom = x[:, :, top : top + self.crop, top : top + self.crop]
            zoom = F.interpolate(
                zoom, size=[self.size, self.size], mode="bilinear", align_corners=False
            )
            out += [zoom, zoom.flip(-1)]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([self.classifier(v).float().softmax(-1) for v in self.views(x)])
        p = probs.mean(0)
        if self.temperature != 1.0:
            p = temper(p, self.temperature)
        return p


def temper(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(log(probs) / T)``: the temperature step of :class:`Served` (TorchScript
    compiles it with the module)."""
    return (probs.clamp_min(1e-12).log() / temperature).softmax(-1)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """:func:`temper` on numpy probabilities (what :class:`Served` does after averaging)."""
    return temper(torch.as_tensor(probs, dtype=torch.float32), temperature).numpy()


def fit_temperature(log_probs: torch.Tensor | np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``softmax(log_probs / T)`` (LBFGS on log T,
    inside :data:`TEMPERATURE_RANGE`)."""
    z = torch.as_tensor(log_probs, dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(y) == 0:
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")
    lo, hi = (math.log(b) for b in TEMPERATURE_RANGE)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.clamp(lo, hi).exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().clamp(lo, hi).exp())
    return t if math.isfinite(t) else 1.0


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-label ECE with :data:`ECE_BINS` equal-width bins (torchmetrics)."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    p = torch.as_tensor(probs, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return float(multiclass_calibration_error(p, y, p.shape[1], n_bins=ECE_BINS, norm="l1"))


def reliability_bins(probs: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    """Per confidence bin: mean confidence, accuracy and count (the diagram's data).

    Binning written here because torchmetrics returns only the error, not the bins."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            rows.append(
                {
                    "low": float(lo),
                    "high": float(hi),
                    "confidence": float(conf[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                    "n": int(inside.sum()),
                }
            )
    return rows


def plot_reliability(
    path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = ""
) -> None:
    """A reliability diagram: accuracy against confidence per bin, one line per named
    ``(probs, labels)`` pair, with each one's ECE in the legend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    for name, (probs, labels) in curves.items():
        rows = reliability_bins(probs, labels)
        ece = expected_calibration_error(probs, labels)
        ax.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            markersize=3,
            label=f"{name} (ECE {ece:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "reliability")
    ax.legend(loc="upper left", fontsize=8)
    save_figure(path, fig)


@dataclass(frozen=True)
class Calibration:
    """How a run serves its probabilities (``calibration.json`` in the run directory)."""

    tta: str = "none"
    temperature: float = 1.0
    fitted_on: str = "none"  # "validation", "out-of-fold" or "none"
    n: int = 0
    nll_before: float | None = None
    nll_after: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, run: Path) -> None:
        atomic_write_text(run / CALIBRATION_FILE, json.dumps(self.to_dict(), indent=2))


def read_calibration(run: Path, config: dict[str, Any]) -> Calibration:
    """The run's :class:`Calibration`; a run written before calibration existed (no file)
    serves plain probabilities with its config's TTA."""
    path = run / CALIBRATION_FILE
    where = repr(str(path))
    if not path.is_file():
        tta = config.get("tta", "none")
        check_choice(repr(str(run / "config.json")), "tta", tta, TTA_MODES, error=RunError)
        return Calibration(tta=tta)
    d = read_json(path, RunError)
    if not isinstance(d, dict):
        raise RunError(f"{where} must be an object with tta and temperature")
    tta = check_choice(where, "tta", d.get("tta"), TTA_MODES, error=RunError)
    lo, hi = TEMPERATURE_RANGE
    t = check_number(where, "temperature", d.get("temperature"), lo, hi, error=RunError)
    n = check_number(where, "n", d.get("n", 0), 0, integer=True, error=RunError)
    nll = [
        check_number(where, k, d.get(k), 0, allow_none=True, error=RunError)
        for k in ("nll_before", "nll_after")
    ]
    return Calibration(
        tta=tta,
        temperature=float(t),
        fitted_on=str(d.get("fitted_on", "none")),
        n=int(n),
        nll_before=nll[0],
        nll_after=nll[1],
        note=str(d.get("note", "")),
    )


def calibration_report(
    out: Path, calibration: Calibration, raw: np.ndarray, labels: np.ndarray, split: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The served probabilities (``raw`` after the temperature), the report's calibration
    entry (ECE before and after on these images) and ``out/reliability.png``."""
    after = apply_temperature(raw, calibration.temperature)
    entry = {
        **calibration.to_dict(),
        "ece_before": expected_calibration_error(raw, labels),
        "ece_after": expected_calibration_error(after, labels),
        "scored_on": split,
    }
    out.mkdir(parents=True, exist_ok=True)
    t = calibration.temperature
    curves = (
        {"before": (raw, labels), f"T = {t:.2f}": (after, labels)}
        if t != 1.0
        else {"served": (raw, labels)}
    )
    plot_reliability(out / "reliability.png", curves, title=f"reliability on the {split} images")
    return after, entry


def served_view_probs(
    classifier: nn.Module,
    preprocess: PreprocessModule,
    data: Any,
    tta: str = "none",
    batch_size: int = 64,
) -> np.ndarray:
    """The TTA-averaged probabilities (temperature 1) of ``classifier`` on ``data``
    (:class:`~transfer.images.LabelledImages`), on the classifier's device, in eval mode."""
    from transfer.data import predict_outputs

    served = Served(classifier, preprocess.input_size, tta)
    return predict_outputs(served, preprocess, data, batch_size)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    p = probs[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())
