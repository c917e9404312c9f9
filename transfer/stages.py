"""What the two fine-tuning stages (probe and fine-tuning) share: the trainer they run on, the
fit wrapper that silences Lightning's expected warnings, and the device to compute features on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from augmentor.trainer import build_trainer, ddp_strategy, fit
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
    single_device: bool = False,
    resume: bool = False,
) -> L.Trainer:
    """The trainer of one stage (``probe`` or ``finetune``), logging under ``out/logs/<stage>``;
    DDP over ``config.devices`` unless ``single_device``."""
    devices: Any = 1 if single_device else config.devices
    nodes = 1 if single_device else config.num_nodes
    return build_trainer(
        out,
        stage=stage,
        resume=resume,
        devices=devices,
        num_nodes=nodes,
        precision=config.precision,
        strategy=ddp_strategy(devices, nodes, find_unused),
        callbacks=callbacks,
        progress=progress,
        max_epochs=epochs,
        max_steps=config.steps if config.steps is not None and stage == "finetune" else -1,
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
