"""What the two fine-tuning stages (probe and fine-tuning) share: the trainer they run on, the
fit wrapper that silences Lightning's expected warnings, and the device to compute features on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from augmentor.trainer import build_trainer, fit
from transfer.config import FinetuneConfig

__all__ = ["device_name", "fit_stage", "last_logged", "stage_trainer"]


def device_name() -> str:
    """``cuda`` when a GPU is there, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def stage_trainer(
    config: FinetuneConfig,
    out: Path,
    epochs: int,
    stage: str,
    callbacks: list[Callback],
    checkpoint: bool,
    progress: bool,
    find_unused: bool = False,
    validate: bool = True,
) -> L.Trainer:
    """The trainer of one stage (``probe`` or ``finetune``), logging under ``out/logs/<stage>``."""
    strategy: Any = "auto"
    if torch.cuda.device_count() > 1 and config.devices not in (1, [0], "1"):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(find_unused_parameters=find_unused)
    return build_trainer(
        out,
        stage=stage,
        devices=config.devices,
        num_nodes=config.num_nodes,
        precision=config.precision,
        strategy=strategy,
        callbacks=callbacks,
        progress=progress,
        max_epochs=epochs,
        enable_checkpointing=checkpoint,
        use_distributed_sampler=False,
        log_every_n_steps=1,
        deterministic=not torch.cuda.is_available(),
        limit_val_batches=None if validate else 0,
    )


def fit_stage(trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
    fit(
        trainer,
        *args,
        resume_hint="the last finished epoch is in checkpoints/last.ckpt: "
        "resume=True (--resume) continues from it",
        # frozen BatchNorm layers are in eval mode on purpose (Classifier.train)
        # and a run without a validation split has no val_dataloader on purpose
        quiet=[
            r".*module\(s\) in eval mode.*",
            r".*`validation_step` but have no `val_dataloader`.*",
        ],
        **kwargs,
    )


def last_logged(trainer: L.Trainer, key: str) -> float | None:
    value = trainer.logged_metrics.get(key)
    return float(value) if value is not None else None
