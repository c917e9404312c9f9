"""Training of a classifier on Lightning: cross-entropy with per-group learning rates and
schedules (:class:`ClassifierModule`), gradual unfreezing (:class:`GradualUnfreezing`), and
class weighting for imbalanced data.

The optimizer holds every parameter group from the first step; a group's schedule is zero until
its unfreeze epoch. So the number and order of groups never change: the LR scheduler, a resumed
checkpoint and DDP all see one stable optimizer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

from augmentor.ops.mix import MixUp
from augmentor.seeding import stream
from transfer.classifier import GroupSpec

__all__ = [
    "ClassifierModule",
    "GradualUnfreezing",
    "class_weights",
    "cosine_factor",
    "sample_weights",
]


def cosine_factor(
    step: int, steps_per_epoch: int, start_epoch: int | None, warmup_epochs: float, epochs: int
) -> float:
    """Zero before ``start_epoch``, linear warm-up, then cosine to zero at the end."""
    if start_epoch is None:
        return 0.0
    epoch = step / max(1, steps_per_epoch)
    if epoch < start_epoch:
        return 0.0
    t = epoch - start_epoch
    span = max(epochs - start_epoch, 1e-9)
    if warmup_epochs > 0 and t < warmup_epochs:
        return (t + 1.0 / max(1, steps_per_epoch)) / warmup_epochs
    progress = min(1.0, (t - warmup_epochs) / max(span - warmup_epochs, 1e-9))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of ``net`` with per-group learning rates and schedules.

    ``net`` maps a batch to logits: a :class:`Classifier` on images, or a head on features.
    """

    def __init__(
        self,
        net: nn.Module,
        groups: Sequence[GroupSpec],
        num_classes: int,
        epochs: int,
        weight_decay: float = 0.01,
        warmup_epochs: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
        batch_mix: Sequence[MixUp] = (),
        mix_seed: int = 0,
    ) -> None:
        super().__init__()
        self.net = net
        # MixUp/CutMix: image batch + int labels -> mixed batch + soft labels, which
        # CrossEntropyLoss takes as class probabilities (label smoothing still applies).
        # augmentor's ops, not torchvision's v2.MixUp/CutMix: those draw from torch's global
        # RNG, which a resumed run would not replay.
        self.batch_mix = list(batch_mix)
        self.mix_seed = mix_seed
        self.groups = list(groups)
        self.num_classes = num_classes
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.loss = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
        self._epoch_start = 0.0
        self._epoch_images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _maybe_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and x.is_cuda:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        target = y
        if self.batch_mix and len(y) > 1:
            rng = stream(self.mix_seed, "batch-mix", self.global_step, self.global_rank)
            mix = self.batch_mix[int(rng.integers(len(self.batch_mix)))]
            x, target = mix(x, y, rng)
        logits = self(self._maybe_channels_last(x))
        loss = self.loss(logits, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}: lower lr/head_lr"
            )
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        self.log("train/acc", acc, on_step=False, on_epoch=True)
        self._epoch_images += len(y)
        return loss

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_images = 0

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_start
        if seconds > 0:
            self.log("train/images_per_s", self._epoch_images / seconds)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        logits = self(self._maybe_channels_last(x))
        self.log("val/loss", self.loss(logits, y), prog_bar=True, sync_dist=True)
        self.log("val/acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        param_groups = [
            {"params": g.params, "lr": g.lr, "name": g.name, "weight_decay": self.weight_decay}
            for g in self.groups
        ]
        optimizer = torch.optim.AdamW(param_groups)
        steps_per_epoch = max(1, int(self.trainer.estimated_stepping_batches) // self.epochs)
        lambdas = [
            (
                lambda step, s=g.start_epoch: cosine_factor(
                    step, steps_per_epoch, s, self.warmup_epochs, self.epochs
                )
            )
            for g in self.groups
        ]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)  # type: ignore[arg-type]
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class GradualUnfreezing(BaseFinetuning):
    """Freezes each group until its start epoch (Lightning's ``BaseFinetuning`` contract).

    Groups are never added to the optimizer here: they are all there from the start with a
    zero learning rate until they unfreeze, so this only switches ``requires_grad``.
    """

    def __init__(self, groups: Sequence[GroupSpec]) -> None:
        super().__init__()
        self.groups = list(groups)

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        for g in self.groups:
            if g.start_epoch != 0:
                for p in g.params:
                    p.requires_grad_(False)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Any) -> None:
        for g in self.groups:
            if g.start_epoch is not None and g.start_epoch <= epoch:
                for p in g.params:
                    p.requires_grad_(True)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # BaseFinetuning would restore param groups it added itself; none are ever added here,
        # and restoring its stored copies would overwrite the scheduled learning rates.
        self._restarting = False


def class_weights(labels: np.ndarray, k: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (k * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def sample_weights(labels: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return 1.0 / counts[labels]
