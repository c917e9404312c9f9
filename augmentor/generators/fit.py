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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from augmentor.generators.callbacks import QualityTracker, SampleGrid, plot_losses
from augmentor.generators.common import VERSIONS, DivergenceError, save_generator
from augmentor.generators.config import GeneratorError, TrainConfig
from augmentor.generators.data import GeneratorData, load_training_data
from augmentor.generators.system import build_system
from augmentor.guards import DivergenceGuard, EpochCheckpoint
from augmentor.io import atomic_write_text, prepare_run_dir
from augmentor.seeding import global_seed
from augmentor.trainer import build_trainer, ddp_strategy, fit, is_global_zero, versions

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
    overwrite: bool = False,
    progress: bool = True,
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None = None,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """Train a generator on an image folder; write ``out/generator`` (and ``out/best``).

    Args:
        data: an ImageFolder directory or prepared :class:`GeneratorData`.
        out: the run directory: ``generator/`` (the final sampling network, saved with
            ``save_pretrained``), ``best/`` (with ``score``), ``checkpoints/last.ckpt``
            (written every ``steps_per_epoch`` steps, atomically), ``samples/`` (a grid per
            epoch), ``logs/``, ``loss.png``, ``run.json`` and ``train.json``.
        config: the settings; ``None`` fields are chosen by :meth:`TrainConfig.resolved`.
            ``steps`` are optimizer steps, exactly, whatever the device count.
        resume: continue from ``out/checkpoints/last.ckpt`` (a run of the same settings and
            data; ``steps`` and ``minutes`` may grow).
        overwrite: replace a previous run in ``out`` (without it or ``resume`` it is refused).
        score: quality of sampled images, e.g. KID (lower is better) in a pretrained feature
            space; tracked every epoch and the best generator kept.
    """
    from augmentor.trainer import check_devices

    check_devices(config.devices)  # before any work
    with global_seed(config.seed):
        return _train(data, out, config, resume, overwrite, progress, score, callbacks)


# settings that may change between an interrupted run and its resumption
_BUDGET = ("steps", "minutes", "devices", "precision", "eval_samples")


def _train(
    data: str | Path | GeneratorData,
    out: str | Path,
    config: TrainConfig,
    resume: bool,
    overwrite: bool,
    progress: bool,
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None,
    callbacks: list[Callback] | None,
) -> TrainResult:
    if not isinstance(data, GeneratorData):
        data = load_training_data(data, config.image_size, config.channels, config.min_per_class)
    for note in data.notes if is_global_zero() else ():
        log.warning("%s", note)
    config = resolve_config(config, data)
    settings = {k: v for k, v in asdict(config).items() if k not in _BUDGET}
    identity = {**settings, "classes": data.class_names, "data_fingerprint": data.fingerprint}
    out = Path(out)
    if is_global_zero():  # the other processes of a multi-device run find it claimed
        prepare_run_dir(
            out,
            identity,
            resume=resume,
            overwrite=overwrite,
            products=["generator", "best", "samples", "logs", "loss.png", "train.json"],
            error=GeneratorError,
        )
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

    last = out / "checkpoints" / "last.ckpt"
    cbs: list[Callback] = [
        DivergenceGuard(),  # checks each epoch before anything of it is saved
        SampleGrid(out / "samples", data.class_names),
    ]
    tracker = None
    if score is not None:
        tracker = QualityTracker(score, config.eval_samples, save, out / "best")
        cbs.append(tracker)
    cbs += callbacks or []
    cbs.append(EpochCheckpoint(last))  # Lightning runs checkpoint callbacks last
    trainer = build_trainer(
        out,
        resume=resume,
        devices=config.devices,
        precision=config.precision,
        strategy=ddp_strategy(config.devices, find_unused=config.kind == "gan"),
        callbacks=cbs,
        progress=progress,
        max_steps=config.steps * module.optimizer_steps_per_step if config.steps else -1,
        max_epochs=-1,
        max_time={"minutes": config.minutes} if config.minutes else None,
        log_every_n_steps=min(10, config.steps_per_epoch),
        # every process draws its own seeded batch per step: the step tokens are not sharded
        use_distributed_sampler=False,
    )
    loader = DataLoader(_Steps(config.steps_per_epoch), batch_size=None, shuffle=False)
    t = time.perf_counter()
    try:
        fit(
            trainer,
            module,
            loader,
            ckpt_path=str(last) if resume else None,
            resume_hint="rerun with --resume to continue",
            # the step tokens carry no state: a step's draws come from the step counter in the
            # checkpoint, so resuming inside an epoch continues exactly
            quiet=[
                ".*does not have many workers.*",
                ".*dataloader is not resumable.*",
                ".*module\\(s\\) in eval mode.*",  # the frozen feature network (--perceptual)
            ],
        )
    except DivergenceError as e:
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint yet"
        raise DivergenceError(
            f"{e}; training stopped: {kept}, nothing was saved from the diverged epoch"
        ) from None
    seconds = time.perf_counter() - t
    result = TrainResult(
        out,
        out / "generator",
        config,
        int(module.step),
        seconds,
        data.notes,
        tracker.history if tracker else [],
    )
    if not trainer.is_global_zero:  # rank 0 alone writes (every rank holds the same weights)
        return result
    save(
        module.sampler(),
        result.generator_dir,
        {"quality": tracker.history[-1] if tracker and tracker.history else None},
    )
    plot_losses(out)
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
