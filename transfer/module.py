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
    step: int,
    steps_per_epoch: int,
    start_epoch: int | None,
    warmup_epochs: float,
    epochs: int,
    min_warmup_fraction: float = 0.0,
) -> float:
    """Zero before ``start_epoch``, linear warm-up, then cosine to zero at the end.

    The warm-up is counted in steps: ``warmup_epochs`` epochs of steps, and at least
    ``min_warmup_fraction`` of the group's steps (a 9-step run warms up over 1 step at one
    epoch of 3 steps... and over 3 with a 0.3 floor).
    """
    if start_epoch is None:
        return 0.0
    spe = max(1, steps_per_epoch)
    start = start_epoch * spe
    if step < start:
        return 0.0
    span = max(epochs * spe - start, 1)
    warmup = max(warmup_epochs * spe, min_warmup_fraction * span)
    t = step - start
    if warmup > 0 and t < warmup:
        return (t + 1.0) / warmup
    progress = min(1.0, (t - warmup) / max(span - warmup, 1e-9))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of ``net`` with per-group learning rates and schedules.

    ``net`` maps a batch to logits: a :class:`Classifier` on images, or a head on features.
    Every random draw of step ``s`` (MixUp/CutMix and, through torch's global generator, the
    dropout) comes from ``(mix_seed, s, rank)``, so a resumed run repeats the uninterrupted one
    exactly. ``lr_scale`` multiplies every group's rate and ``min_warmup_fraction`` floors the
    warm-up (both for short runs, see :func:`transfer.finetuning.finetune_stage`).
    """

    lr_option = "--lr and --head-lr"  # what a divergence message tells the user to lower

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
        lr_scale: float = 1.0,
        min_warmup_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.lr_scale = lr_scale
        self.min_warmup_fraction = min_warmup_fraction
        self.watched_loss: torch.Tensor | None = None  # read by the divergence guard
        self.reference_loss = math.log(num_classes)  # chance level: far above it is divergence
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

    def current_step(self) -> int:
        return int(self.global_step)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # dropout and other stochastic layers draw from torch's global generator: make it a
        # function of (seed, step, rank), as every other draw of the step is (the caller's
        # own state is kept: fine-tuning runs inside augmentor.seeding.global_seed)
        word = stream(self.mix_seed, "dropout", self.global_step, self.global_rank).integers(
            0, 2**63 - 1
        )
        torch.manual_seed(int(word))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        target = y
        if self.batch_mix and len(y) > 1:
            rng = stream(self.mix_seed, "batch-mix", self.global_step, self.global_rank)
            mix = self.batch_mix[int(rng.integers(len(self.batch_mix)))]
            # labels come from the training set: valid class indices, no per-step check
            x, target = mix(x, y, rng, check_labels=False)
        logits = self(self._maybe_channels_last(x))
        loss = self.loss(logits, target)
        self.watched_loss = loss.detach()  # checked on the device once an epoch, not per step
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
            {
                "params": g.params,
                "lr": g.lr * self.lr_scale,
                "name": g.name,
                "weight_decay": self.weight_decay,
            }
            for g in self.groups
        ]
        optimizer = torch.optim.AdamW(param_groups)
        steps_per_epoch = max(1, int(self.trainer.estimated_stepping_batches) // self.epochs)
        lambdas = [
            (
                lambda step, s=g.start_epoch: cosine_factor(
                    step,
                    steps_per_epoch,
                    s,
                    self.warmup_epochs,
                    self.epochs,
                    self.min_warmup_fraction,
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
    zero learning rate until they unfreeze. On one device a frozen group stops requiring
    gradients. On several, DDP only synchronises the parameters that require gradients when it
    wraps the model, so every parameter keeps requiring them: a frozen group's gradients are
    dropped after each backward instead (AdamW then skips it, exactly as if frozen) and the
    classifier is told which of its BatchNorm layers are frozen.
    """

    def __init__(self, groups: Sequence[GroupSpec]) -> None:
        super().__init__()
        self.groups = list(groups)
        self.mask = False  # drop gradients instead of switching requires_grad (several devices)
        self.frozen: set[int] = set()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.mask = trainer.world_size > 1
        super().setup(trainer, pl_module, stage)

    def _apply(self, pl_module: L.LightningModule) -> None:
        net = getattr(pl_module, "net", None)
        if isinstance(getattr(net, "frozen", None), set):
            net.frozen = set(self.frozen) if self.mask else set()  # type: ignore[union-attr]
        if pl_module.training:
            pl_module.train()  # refresh which BatchNorm layers run in eval mode

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        for g in self.groups:
            if g.start_epoch != 0:
                for p in g.params:
                    self.frozen.add(id(p))
                    p.requires_grad_(self.mask)
        self._apply(pl_module)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Any) -> None:
        for g in self.groups:
            if g.start_epoch is not None and g.start_epoch <= epoch:
                for p in g.params:
                    self.frozen.discard(id(p))
                    p.requires_grad_(True)
        self._apply(pl_module)

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.mask and self.frozen:
            for g in self.groups:
                for p in g.params:
                    if id(p) in self.frozen:
                        p.grad = None

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
