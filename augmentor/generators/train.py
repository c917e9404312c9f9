"""One training entry point for the three generators, on Lightning.

:func:`train_generator` loads an image folder (resizing consistently and saying so), picks
defaults from the dataset and image size, and runs a Lightning ``Trainer`` with checkpoints,
CSV/TensorBoard logs, a sample grid per epoch, optional quality tracking that keeps the best
generator, NaN detection, and exact resume.

Exactness: every random draw of training step ``s`` (the batch, noise, timesteps, DiffAugment)
comes from a generator seeded with ``(seed, s)``; the step counter, EMA and optimizer states are
in the checkpoint; checkpoints fall on epoch boundaries (``steps_per_epoch`` steps). So training
N steps, stopping, and resuming to N+M steps gives the same weights as N+M steps at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from augmentor.generators import generator_class, list_generators
from augmentor.generators.common import VERSIONS, GeneratorError, write_meta
from augmentor.generators.gan import ProjectionDiscriminator, diff_augment
from augmentor.training import default_precision, fit, versions

log = logging.getLogger(__name__)

__all__ = [
    "DivergenceError",
    "GeneratorData",
    "TrainConfig",
    "TrainResult",
    "load_training_data",
    "resolve_config",
    "train_generator",
]


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite; the message says at which step and what was kept."""


@dataclass(frozen=True)
class TrainConfig:
    """A generator training run. ``None`` fields are chosen from the data (see
    :func:`resolve_config`).

    Args:
        kind: ``gan``, ``vae`` or ``diffusion``.
        steps: training steps (rounded up to whole epochs of ``steps_per_epoch``).
        minutes: a wall-clock budget instead of (or on top of) ``steps``.
        image_size: side of the square training images (divisible by 4, >= 16).
        channels: 1 or 3; default 1 when every training image is grey.
        batch_size, lr, base_channels: network and optimizer settings.
        diffaugment: GAN only: DiffAugment on real and fake images before the discriminator.
        class_bn: GAN only: class-conditional BatchNorm in the generator.
        beta: VAE only: the KL weight.
        ema_decay: EMA of the generator weights (GAN, diffusion) used for sampling.
        steps_per_epoch: steps between checkpoints, sample grids and quality checks.
        eval_samples: images sampled for each quality check.
        min_per_class: classes with fewer training images are refused.
        seed: seeds everything.
        devices, precision: Lightning's.
    """

    kind: str
    steps: int | None = None
    minutes: float | None = None
    image_size: int | None = None
    channels: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    base_channels: int | None = None
    diffaugment: bool = True
    class_bn: bool = True
    beta: float = 1.0
    ema_decay: float = 0.999
    steps_per_epoch: int = 100
    eval_samples: int = 200
    min_per_class: int = 5
    seed: int = 0
    devices: Any = "auto"
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in list_generators():
            raise GeneratorError(
                f"kind must be one of {', '.join(list_generators())}, got {self.kind!r}"
            )
        for name in ("steps", "batch_size", "base_channels", "steps_per_epoch", "image_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise GeneratorError(f"{name} must be an integer >= 1, got {v!r}")
        if self.minutes is not None and self.minutes <= 0:
            raise GeneratorError(f"minutes must be > 0, got {self.minutes}")
        if self.channels not in (None, 1, 3):
            raise GeneratorError(f"channels must be 1 or 3, got {self.channels}")
        if not 0 <= self.ema_decay < 1:
            raise GeneratorError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class GeneratorData:
    """Training images as a float tensor in [-1, 1], with labels and provenance."""

    images: torch.Tensor  # (N, C, S, S)
    labels: torch.Tensor  # (N,)
    class_names: list[str]
    fingerprint: str
    notes: list[str]


def load_training_data(
    root: str | Path,
    image_size: int | None = None,
    channels: int | None = None,
    min_per_class: int = 5,
) -> GeneratorData:
    """Decode an image folder, convert every image to one size and channel count.

    Mixed sizes are resized (area when shrinking, cubic when enlarging) to ``image_size``
    (default: the most common size rounded to a multiple of 4); mixed modes are converted; both
    are reported in ``notes``. Corrupt files are skipped and noted. A class with fewer than
    ``min_per_class`` images is an error naming it.
    """
    import cv2

    from augmentor.io import ImageReadError, load_image, scan_image_folder

    try:
        folder = scan_image_folder(root)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise GeneratorError(str(e)) from None
    imgs, labels, notes, skipped = [], [], [], []
    index = {c: i for i, c in enumerate(folder.classes)}
    for item in folder.items:
        try:
            imgs.append(load_image(item.path))
            labels.append(index[item.class_name])
        except ImageReadError as e:
            skipped.append(f"{item.path}: {e}")
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable images (e.g. {skipped[0]})")
    counts = np.bincount(labels, minlength=len(folder.classes))
    if len(folder.classes) < 1 or not len(imgs):
        raise GeneratorError(f"{str(root)!r} holds no readable images")
    low = [(c, int(n)) for c, n in zip(folder.classes, counts) if n < min_per_class]
    if low:
        raise GeneratorError(
            f"each class needs at least {min_per_class} images to train a generator; "
            + ", ".join(f"{c!r} has {n}" for c, n in low)
        )
    sizes = [im.shape[:2] for im in imgs]
    grey = all(im.ndim == 2 or im.shape[2] == 1 for im in imgs)
    c = channels or (1 if grey else 3)
    if image_size is None:
        (h, w), _ = max(((s, sizes.count(s)) for s in set(sizes)), key=lambda t: (t[1], t[0]))
        image_size = max(16, int(round(min(h, w) / 4)) * 4)
    if len(set(sizes)) > 1 or sizes[0] != (image_size, image_size):
        notes.append(
            f"resized {sum(s != (image_size, image_size) for s in sizes)} of {len(sizes)} "
            f"images (sizes {sorted(set(sizes))[:4]}{'...' if len(set(sizes)) > 4 else ''}) "
            f"to {image_size}x{image_size}"
        )
    n_conv = sum((im.ndim == 3 and im.shape[2] != c) for im in imgs)
    if n_conv:
        notes.append(f"converted {n_conv} images to {'grey' if c == 1 else 'RGB'}")
    out = np.empty((len(imgs), image_size, image_size, c), np.uint8)
    for i, im in enumerate(imgs):
        im = im if im.ndim == 3 else im[:, :, None]
        if im.shape[2] != c:
            im = (
                cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[:, :, None]
                if c == 1
                else np.repeat(im, 3, axis=2)
            )
        if im.shape[:2] != (image_size, image_size):
            shrink = im.shape[0] * im.shape[1] > image_size**2
            im = cv2.resize(
                im,
                (image_size, image_size),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC,
            )
            im = im.reshape(image_size, image_size, c)
        out[i] = im
    fingerprint = hashlib.sha256(out.tobytes() + np.asarray(labels).tobytes()).hexdigest()
    x = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 127.5 - 1
    return GeneratorData(x, torch.tensor(labels), list(folder.classes), fingerprint, notes)


DEFAULT_LR = {"gan": 2e-4, "vae": 1e-3, "diffusion": 2e-4}


def resolve_config(config: TrainConfig, data: GeneratorData) -> TrainConfig:
    """Fill the ``None`` settings from the dataset size and image size."""
    n, size = len(data.labels), data.images.shape[-1]
    base = config.base_channels or (32 if size <= 32 else 64)
    batch = config.batch_size or int(min(64, max(8, 2 ** math.floor(math.log2(max(8, n // 8))))))
    steps = config.steps
    if steps is None and config.minutes is None:
        steps = {"gan": 3000, "vae": 2000, "diffusion": 4000}[config.kind]
    return replace(
        config,
        image_size=size,
        channels=data.images.shape[1],
        base_channels=base,
        batch_size=batch,
        lr=config.lr or DEFAULT_LR[config.kind],
        steps=steps,
    )


def build_model(config: TrainConfig, num_classes: int) -> torch.nn.Module:
    cls = generator_class(config.kind)
    kw: dict[str, Any] = dict(
        image_size=config.image_size,
        channels=config.channels,
        num_classes=num_classes,
        base_channels=config.base_channels,
    )
    if config.kind == "vae":
        kw["beta"] = config.beta
    if config.kind == "gan":
        kw["class_bn"] = config.class_bn
    return cls(**kw)


def step_generator(seed: int, step: int, device: torch.device, rank: int = 0) -> torch.Generator:
    """The generator of every random draw in training step ``step`` (on process ``rank``:
    with several GPUs each process draws its own batch)."""
    key = f"{seed}:{step}" if rank == 0 else f"{seed}:{step}:{rank}"
    g = torch.Generator(device=device)
    g.manual_seed(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
    return g


class GeneratorModule(L.LightningModule):
    """Training of any of the three generators.

    The VAE and the diffusion model expose ``loss(x, y, generator)`` and train with automatic
    optimization; the GAN alternates a discriminator and a generator step (manual
    optimization), with hinge loss and optional DiffAugment. An EMA of the sampling network
    (GAN, diffusion) is kept as a submodule, so it is checkpointed with everything else.
    """

    def __init__(self, config: TrainConfig, data: GeneratorData) -> None:
        super().__init__()
        self.config = config
        self.model = build_model(config, len(data.class_names))
        self.register_buffer("images", data.images, persistent=False)
        self.register_buffer("labels", data.labels, persistent=False)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.ema = (
            AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
            )
            if config.kind in ("gan", "diffusion")
            else None
        )
        if config.kind == "gan":
            self.automatic_optimization = False
            self.disc = ProjectionDiscriminator(
                config.image_size, config.channels, len(data.class_names), config.base_channels
            )

    def sampler(self) -> torch.nn.Module:
        """The network that samples: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def _batch(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(
            0, len(self.labels), (self.config.batch_size,), generator=g, device=g.device
        ).to(self.images.device)
        return self.images[idx], self.labels[idx]

    def _check(self, name: str, value: torch.Tensor) -> None:
        if not torch.isfinite(value):
            raise DivergenceError(f"{name} became {value.item()} at step {int(self.step)}")

    def training_step(self, batch: Any, _: int) -> torch.Tensor | None:
        g = step_generator(self.config.seed, int(self.step), self.images.device, self.global_rank)
        x, y = self._batch(g)
        if self.config.kind == "gan":
            self._gan_step(x, y, g)
            out = None
        else:
            loss, parts = self.model.loss(x, y, generator=g)
            self._check("loss", loss)
            self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=True)
            out = loss
        return out

    def on_train_batch_end(self, *args: Any) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1

    def _gan_step(self, real: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> None:
        opt_g, opt_d = self.optimizers()
        aug = (lambda t: diff_augment(t, generator=g)) if self.config.diffaugment else (lambda t: t)
        n = real.shape[0]
        z = self.model.noise(n, g)
        fake = self.model(z, y)
        d_real = self.disc(aug(real), y)
        d_fake = self.disc(aug(fake.detach()), y)
        d_loss = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
        self._check("discriminator loss", d_loss)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = -self.disc(aug(fake), y).mean()
        self._check("generator loss", g_loss)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict(
            {
                "train/d_loss": d_loss.detach(),
                "train/g_loss": g_loss.detach(),
                "train/d_real": d_real.mean().detach(),
            },
            prog_bar=True,
        )

    def configure_optimizers(self) -> Any:
        lr = self.config.lr
        if self.config.kind == "gan":
            return [
                torch.optim.Adam(self.model.parameters(), lr, betas=(0.0, 0.99)),
                torch.optim.Adam(self.disc.parameters(), lr, betas=(0.0, 0.99)),
            ]
        return torch.optim.AdamW(self.model.parameters(), lr, weight_decay=0.0)


class _Steps(torch.utils.data.Dataset):
    """An epoch of step tokens: the module draws its own seeded batch for each."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class SampleGrid(Callback):
    """After each epoch: a PNG grid of EMA samples (one row per class, fixed noise)."""

    def __init__(self, out: Path, class_names: list[str], per_class: int = 8) -> None:
        self.out, self.class_names, self.per_class = out, class_names, per_class

    def on_train_epoch_end(self, trainer: L.Trainer, module: GeneratorModule) -> None:
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
    g = torch.Generator().manual_seed(seed)
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

    def on_train_epoch_end(self, trainer: L.Trainer, module: GeneratorModule) -> None:
        if trainer.global_rank != 0:
            return
        labels = torch.arange(self.n) % module.model.config.num_classes
        imgs = module.sampler().sample(
            self.n, labels=labels, generator=torch.Generator().manual_seed(1)
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


@dataclass
class TrainResult:
    out: Path
    generator_dir: Path
    config: TrainConfig
    steps: int
    seconds: float
    notes: list[str]
    quality: list[dict[str, float]]


def save_generator(model: torch.nn.Module, directory: Path, meta: dict[str, Any]) -> None:
    """Write a generator directory atomically; refuses non-finite weights."""
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise DivergenceError(f"refusing to save a generator with non-finite weights ({name})")
    directory = Path(directory)
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    write_meta(tmp, meta)
    if directory.exists():
        old = directory.with_name(f".old-{directory.name}")
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(directory)


def estimate_seconds(config: TrainConfig, data: GeneratorData, probe_steps: int = 3) -> float:
    """Seconds per training step, timed on a few real steps (for ``--dry-run``)."""
    module = GeneratorModule(config, data)
    opts = module.configure_optimizers()
    opts = opts if isinstance(opts, list) else [opts]
    times = []
    for s in range(probe_steps + 1):
        t = time.perf_counter()
        g = step_generator(config.seed, s, torch.device("cpu"))
        x, y = module._batch(g)
        if config.kind == "gan":
            z = module.model.noise(len(y), g)
            fake = module.model(z, y)
            loss = -module.disc(fake, y).mean() + torch.relu(1 - module.disc(x, y)).mean()
        else:
            loss, _ = module.model.loss(x, y, generator=g)
        loss.backward()
        for o in opts:
            o.step()
            o.zero_grad()
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
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not isinstance(data, GeneratorData):
        data = load_training_data(data, config.image_size, config.channels, config.min_per_class)
    for note in data.notes:
        log.warning("%s", note)
    config = resolve_config(config, data)
    epochs = math.ceil(config.steps / config.steps_per_epoch) if config.steps else 10**9
    L.seed_everything(config.seed, verbose=False)
    module = GeneratorModule(config, data)
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
    trainer = L.Trainer(
        max_epochs=epochs,
        max_time={"minutes": config.minutes} if config.minutes else None,
        accelerator="auto",
        devices=config.devices,
        precision=config.precision or default_precision(),
        logger=[
            CSVLogger(str(out / "logs"), name="", version=""),
            TensorBoardLogger(str(out / "logs"), name="tensorboard", version=""),
        ],
        callbacks=cbs,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=min(10, config.steps_per_epoch),
        num_sanity_val_steps=0,
        default_root_dir=str(out),
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
    _plot_losses(out)
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


def _plot_losses(out: Path) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from augmentor.io import save_figure

    path = out / "logs" / "metrics.csv"
    if not path.is_file():
        return
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
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
