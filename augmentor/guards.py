"""The guards of a long run, Lightning callbacks shared by generator training and fine-tuning:
:class:`EpochCheckpoint` (``last.ckpt`` every epoch, really) and :class:`DivergenceGuard`
(divergence caught before it is saved).

Divergence:

Every step adds the system's watched loss to a running sum on its device (no host sync per
step); at the end of each epoch, before any checkpoint of that epoch is written (Lightning runs
checkpoint callbacks last), one check reads it back and stops training with
:class:`DivergenceError` when

* a loss was NaN or infinite (the message names the first such step);
* the epoch's mean loss is ``ratio`` times above its reference (the system's chance-level loss,
  or else its first epoch's mean): finite divergence, such as a classifier ending at chance
  with huge weights;
* a weight or buffer is non-finite, a weight's magnitude exceeds ``max_weight`` or a
  floating buffer's (BatchNorm statistics) exceeds ``max_weight`` squared (a GAN whose
  statistics ran off to 1e15 while its losses stayed finite).

So no checkpoint or model of a diverged epoch is ever written. The system (a LightningModule)
exposes ``watched_loss`` (the last step's detached loss, or None), ``current_step()``, and
optionally ``reference_loss`` (a float) and ``lr_option`` (the option to lower, for the
message).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint

from augmentor.trainer import DivergenceError

__all__ = ["DivergenceError", "DivergenceGuard", "EpochCheckpoint"]


class EpochCheckpoint(Checkpoint):
    """Write ``path`` (through the trainer, so atomically and on rank 0) at the end of every
    epoch and when training ends inside an epoch (``max_steps``).

    Lightning 2.6's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes no ``last.ckpt``
    until the fit ends, so a killed run had nothing to resume from. Being a ``Checkpoint``,
    this runs after every other callback of the epoch (the divergence guard included).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._saved_at = -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.global_step != self._saved_at:
            trainer.save_checkpoint(self.path, weights_only=False)  # the whole state: resumable
            self._saved_at = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


class DivergenceGuard(Callback):
    """Stops a fit whose loss or weights diverged, before that epoch is checkpointed.

    Args:
        ratio: an epoch mean loss this many times its reference is divergence.
        max_weight: a parameter magnitude above this is divergence.
    """

    def __init__(self, ratio: float = 10.0, max_weight: float = 1e4) -> None:
        self.ratio = ratio
        self.max_weight = max_weight
        self.reference: float | None = None
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._first_bad: torch.Tensor | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sum, self._count, self._first_bad = None, 0, None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        loss = getattr(pl_module, "watched_loss", None)
        if loss is None:
            return
        loss = loss.detach().float()
        step = torch.full((), _step(pl_module, trainer), device=loss.device)
        bad = ~torch.isfinite(loss)
        if self._sum is None or self._first_bad is None:
            self._sum = torch.zeros((), device=loss.device)
            self._first_bad = torch.full((), -1.0, device=loss.device)
        self._sum = self._sum + torch.where(bad, torch.zeros_like(loss), loss)
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)
        self._count += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Raise :class:`DivergenceError` if the epoch so far diverged (one host sync)."""
        hint = getattr(pl_module, "lr_option", "--lr")
        if self._first_bad is not None and self._sum is not None and self._count:
            first_bad = int(self._first_bad.item())
            if first_bad >= 0:
                raise DivergenceError(
                    f"training diverged: the loss became NaN or infinite at step {first_bad}; "
                    f"lower the learning rate ({hint})"
                )
            mean = float(self._sum.item()) / self._count
            reference = getattr(pl_module, "reference_loss", None) or self.reference
            if not getattr(pl_module, "loss_ratio_check", True):
                pass  # an adversarial loss has no level to compare with
            elif reference is None:
                self.reference = mean
            elif reference > 0 and mean > self.ratio * reference:
                raise DivergenceError(
                    f"training diverged: the mean loss of the epoch ending at step "
                    f"{_step(pl_module, trainer)} is {mean:.3g}, over {self.ratio:g}x its "
                    f"reference {reference:.3g}; lower the learning rate ({hint})"
                )
        name, value = _worst_weight(pl_module, self.max_weight)
        if not math.isfinite(value) or value > self.max_weight:
            what = "non-finite" if not math.isfinite(value) else f"{value:.3g} in magnitude"
            raise DivergenceError(
                f"training diverged: {name} is {what} at step {_step(pl_module, trainer)}; "
                f"lower the learning rate ({hint})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.reference = state_dict.get("reference")


def _step(pl_module: L.LightningModule, trainer: L.Trainer) -> int:
    current = getattr(pl_module, "current_step", None)
    return int(current()) if callable(current) else int(trainer.global_step)


def _worst_weight(module: torch.nn.Module, limit: float) -> tuple[str, float]:
    """The largest parameter magnitude; inf when a parameter or float buffer is non-finite or
    a buffer exceeds ``limit`` squared (statistics run off)."""
    worst_name, worst = "", 0.0
    with torch.no_grad():
        for name, p in module.named_parameters():
            m = float(p.detach().abs().max()) if p.numel() else 0.0
            if not math.isfinite(m):
                return f"weight {name}", math.inf
            if m > worst:
                worst_name, worst = f"weight {name}", m
        for name, b in module.named_buffers():
            if b.is_floating_point() and b.numel():
                m = float(b.detach().abs().max())
                if not math.isfinite(m) or m > limit * limit:
                    return f"buffer {name}", m
    return worst_name, worst
