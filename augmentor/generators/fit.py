"""One training entry point for the three generators, on Lightning: :func:`train_generator`.

It loads an image folder (resizing consistently and saying so), picks defaults from the dataset
and image size (:meth:`TrainConfig.resolved`), and runs a ``Trainer`` over the kind's system
(:mod:`augmentor.generators.system`) with checkpoints, CSV/TensorBoard logs, a sample grid per
epoch, optional quality tracking that keeps the best generator, NaN detection and exact resume.
:func:`estimate_seconds` times the system's own training step.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from augmentor.generators.callbacks import QualityTracker, SampleGrid, plot_losses
from augmentor.generators.common import VERSIONS, DivergenceError, save_generator
from augmentor.generators.config import TrainConfig
from augmentor.generators.data import GeneratorData, load_training_data
from augmentor.generators.system import build_system
from augmentor.seeding import global_seed
from augmentor.trainer import build_trainer, fit, versions

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "estimate_seconds", "resolve_config", "train_generator"]


def resolve_config(config: TrainConfig, data: GeneratorData) -> TrainConfig:
    """Fill the ``None`` settings from the dataset size and image size."""
    return config.resolved(len(data.labels), data.images.shape[-1], data.images.shape[1])


class _Steps(torch.utils.data.Dataset):
    """An epoch of step tokens: the module draws its own seeded batch for each."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@dataclass
class TrainResult:
    out: Path
    generator_dir: Path
    config: TrainConfig
    steps: int
    seconds: float
    notes: list[str]
    quality: list[dict[str, float]]


def estimate_seconds(config: TrainConfig, data: GeneratorData, probe_steps: int = 3) -> float:
    """Seconds per training step, timed on a few real steps of the kind's own system (for
    ``--dry-run``); the first step (warm-up) is not counted."""
    system = build_system(config, data)
    configured: Any = system.configure_optimizers()  # one optimizer, or a list of them
    opts = list(configured) if isinstance(configured, list) else [configured]
    system.train()
    times = []
    for s in range(probe_steps + 1):
        t = time.perf_counter()
        system.timed_step(s, opts)
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def train_generator(
    data: str | Path | GeneratorData,
    out: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None = None,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """Train a generator on an image folder; write ``out/generator`` (and ``out/best``).

    Args:
        data: an ImageFolder directory or prepared :class:`GeneratorData`.
        out: the run directory: ``generator/`` (the final sampling network, saved with
            ``save_pretrained``), ``best/`` (with ``score``), ``checkpoints/``, ``samples/``
            (a grid per epoch), ``logs/``, ``loss.png`` and ``train.json``.
        config: the settings; ``None`` fields are chosen by :func:`resolve_config`.
        resume: continue from ``out/checkpoints/last.ckpt``.
        score: quality of sampled images, e.g. KID (lower is better) in a pretrained feature
            space; tracked every epoch and the best generator kept.
    """
    with global_seed(config.seed):
        return _train(data, out, config, resume, progress, score, callbacks)


def _train(
    data: str | Path | GeneratorData,
    out: str | Path,
    config: TrainConfig,
    resume: bool,
    progress: bool,
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None,
    callbacks: list[Callback] | None,
) -> TrainResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not isinstance(data, GeneratorData):
        data = load_training_data(data, config.image_size, config.channels, config.min_per_class)
    for note in data.notes:
        log.warning("%s", note)
    config = resolve_config(config, data)
    epochs = math.ceil(config.steps / config.steps_per_epoch) if config.steps else 10**9
    module = build_system(config, data)
    meta = {
        "kind": config.kind,
        "class_names": data.class_names,
        "image_size": config.image_size,
        "channels": config.channels,
        "data_fingerprint": data.fingerprint,
        "train_config": asdict(config),
        "versions": versions(VERSIONS),
    }

    def save(model: torch.nn.Module, directory: Path, extra: dict[str, Any]) -> None:
        save_generator(model, directory, {**meta, "step": int(module.step), **extra})

    ckpt = ModelCheckpoint(
        dirpath=str(out / "checkpoints"),
        save_last=True,
        save_top_k=0,
        every_n_epochs=1,
        save_on_train_epoch_end=True,
    )
    cbs: list[Callback] = [ckpt, SampleGrid(out / "samples", data.class_names)]
    tracker = None
    if score is not None:
        tracker = QualityTracker(score, config.eval_samples, save, out / "best")
        cbs.append(tracker)
    cbs += callbacks or []
    trainer = build_trainer(
        out,
        devices=config.devices,
        precision=config.precision,
        callbacks=cbs,
        progress=progress,
        max_epochs=epochs,
        max_time={"minutes": config.minutes} if config.minutes else None,
        log_every_n_steps=min(10, config.steps_per_epoch),
    )
    loader = DataLoader(_Steps(config.steps_per_epoch), batch_size=None, shuffle=False)
    last = out / "checkpoints" / "last.ckpt"
    t = time.perf_counter()
    try:
        fit(
            trainer,
            module,
            loader,
            ckpt_path=str(last) if resume and last.is_file() else None,
            resume_hint="rerun with --resume to continue",
            quiet=[".*does not have many workers.*"],
        )
    except DivergenceError as e:
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint yet"
        raise DivergenceError(
            f"{e}; training stopped, {kept}, nothing was saved as the generator. Lower the "
            "learning rate (--lr) and resume, or restart"
        ) from None
    seconds = time.perf_counter() - t
    final = out / "generator"
    save(
        module.sampler(),
        final,
        {"quality": tracker.history[-1] if tracker and tracker.history else None},
    )
    plot_losses(out)
    from augmentor.io import atomic_write_text

    result = TrainResult(
        out,
        final,
        config,
        int(module.step),
        seconds,
        data.notes,
        tracker.history if tracker else [],
    )
    atomic_write_text(
        out / "train.json",
        json.dumps(
            {
                "config": asdict(config),
                "steps": result.steps,
                "seconds": seconds,
                "notes": data.notes,
                "quality": result.quality,
                "versions": versions(VERSIONS),
            },
            indent=2,
            default=str,
        ),
    )
    return result
