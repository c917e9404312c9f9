"""Callbacks of generator training: a sample grid per epoch, quality tracking that keeps the best
generator, and the loss plot written at the end."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from augmentor.seeding import torch_generator
from augmentor.trainer import read_metric_rows

__all__ = ["QualityTracker", "SampleGrid", "plot_losses", "write_grid"]


class SampleGrid(Callback):
    """After each epoch: a PNG grid of EMA samples (one row per class, fixed noise)."""

    def __init__(self, out: Path, class_names: list[str], per_class: int = 8) -> None:
        self.out, self.class_names, self.per_class = out, class_names, per_class

    def on_train_epoch_end(self, trainer: L.Trainer, module: Any) -> None:
        if trainer.global_rank != 0:
            return
        step = int(module.step)
        write_grid(
            self.out / f"step-{step:07d}.png",
            module.sampler(),
            len(self.class_names),
            self.per_class,
            seed=0,
        )


def write_grid(path: Path, model: Any, num_classes: int, per_class: int = 8, seed: int = 0) -> None:
    """One row per class of ``per_class`` samples, as a PNG (atomic write)."""
    from augmentor.io import save_image

    labels = torch.arange(num_classes).repeat_interleave(per_class)
    g = torch_generator(seed, "generator-eval", 0)
    imgs = model.sample(len(labels), labels=labels, generator=g)  # (N, C, S, S) uint8
    c, s = imgs.shape[1], imgs.shape[2]
    grid = imgs.view(num_classes, per_class, c, s, s).permute(0, 3, 1, 4, 2)
    grid = grid.reshape(num_classes * s, per_class * s, c).numpy()
    save_image(path, np.ascontiguousarray(grid))


class QualityTracker(Callback):
    """Every epoch: sample ``n`` images, score them (lower is better, e.g. KID) and keep the
    best generator in ``out/best``."""

    def __init__(
        self,
        score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
        n: int,
        save: Callable[[torch.nn.Module, Path, dict[str, Any]], None],
        out: Path,
        key: str = "kid",
    ) -> None:
        self.score, self.n, self.save, self.out, self.key = score, n, save, out, key
        self.best = math.inf
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: Any) -> None:
        if trainer.global_rank != 0:
            return
        labels = torch.arange(self.n) % module.model.config.num_classes
        imgs = module.sampler().sample(
            self.n, labels=labels, generator=torch_generator(0, "generator-eval", 1)
        )
        result = self.score(imgs, labels)
        result["step"] = int(module.step)
        self.history.append(result)
        module.log(f"quality/{self.key}", float(result[self.key]))
        if result[self.key] < self.best:
            self.best = result[self.key]
            self.save(module.sampler(), self.out, {"quality": result})

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.history = list(state["history"])


def plot_losses(out: Path) -> None:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from augmentor.io import save_figure

    series: dict[str, list[tuple[int, float]]] = {}
    for row in read_metric_rows(out / "logs"):  # a resumed run: every part, in order
        for k, v in row.items():
            if k.startswith("train/") and v:
                series.setdefault(k, []).append((int(row["step"]), float(v)))
    if not series:
        return
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    for k, pts in sorted(series.items()):
        ax.plot(*zip(*pts), label=k.removeprefix("train/"))
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(out / "loss.png", fig)
