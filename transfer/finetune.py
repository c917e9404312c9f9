"""Fine-tuning a pretrained backbone on a small dataset, on Lightning.

Strategies:

* ``linear``: linear probe. The backbone is frozen (BatchNorm too, in train mode as well), its
  features come from the :class:`~transfer.features.FeatureCache` (optionally K augmented views
  per image) and only the head trains.
* ``lp-ft``: the linear probe first, then the whole network fine-tunes at a small learning rate
  starting from the probed head (Kumar et al., 2022), with layer-wise decayed learning rates.
* ``gradual``: the head trains first; backbone groups unfreeze from the top, one every
  ``unfreeze_every`` epochs, each with a learning rate ``layer_decay`` times the one above.
* ``full``: everything trains from the start (same layer-wise rates).

The optimizer holds every parameter group from the first step; a group's schedule is zero until
its unfreeze epoch. So the number and order of groups never change: the LR scheduler, a resumed
checkpoint and DDP all see one stable optimizer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BaseFinetuning, Callback, EarlyStopping, ModelCheckpoint
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, TensorDataset

from augmentor.ops.mix import CutMix, MixUp
from augmentor.pipeline import Pipeline
from augmentor.presets import preset as make_preset
from augmentor.training import default_precision, fit
from transfer.backbones import Backbone, Preprocessing, create_backbone
from transfer.data import (
    DataError,
    EpochSampler,
    EvalImages,
    LabelledImages,
    TrainImages,
    check_classes,
    load_folder,
    stratified_split,
)
from transfer.features import FeatureCache
from transfer.preprocess import Preprocess

log = logging.getLogger(__name__)

__all__ = [
    "STRATEGIES",
    "Classifier",
    "ClassifierModule",
    "FinetuneConfig",
    "FinetuneResult",
    "GradualUnfreezing",
    "finetune",
]

STRATEGIES = ("linear", "lp-ft", "gradual", "full")
BALANCE = ("none", "loss", "sampler")
# images per class from which a validation split is held out by default; below it every image
# trains (at 50/class that gave +1.5 points on few-shot Fashion-MNIST, see BENCHMARKS.md)
AUTO_VAL_MIN = 100
# ``epochs=None``: this many epochs, or more so that fine-tuning takes at least AUTO_MIN_STEPS
# optimizer steps. 10 images/class x 10 classes at batch 32 make 3 steps an epoch: 20 epochs
# are 60 steps, too few (60 epochs gained +1.1 [+0.3, +1.9] points over 20 on 5 seeds and
# 100 epochs nothing more, BENCHMARKS.md). With the default MixUp + CutMix, 50 epochs: at
# 50/class (15 steps an epoch) they gained +1.35 [+0.8, +1.9] points over 20 epochs without
# mixing on 5 seeds; at 10/class the step rule still gives 60.
AUTO_EPOCHS = 50
AUTO_MIN_STEPS = 180


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that defines a fine-tuning run (written to the run directory as config.json).

    Args:
        backbone: a name for :func:`~transfer.backbones.create_backbone`.
        weights: a local weights file for the backbone.
        pretrained: False for random init.
        strategy: one of ``linear``, ``lp-ft``, ``gradual``, ``full``.
        image_size: the network input size; None keeps the backbone's own.
        crop_pct: the share of each image's short side the centre crop keeps, for training and
            evaluation alike (timm's ``crop_pct``). 1.0 (the default) keeps all of it: the
            user's images are framed by the user, not as ImageNet's photos, and the fine-tuned
            network sees the same crop in training and at test time. None keeps the
            backbone's own recipe (0.875 for the Lite family, ImageNet's evaluation crop). On
            few-shot Fashion-MNIST 1.0 gained +0.5 points at 50 per class and nothing at 10
            (BENCHMARKS.md).
        epochs: fine-tuning epochs (``lp-ft``, ``gradual``, ``full``). None (the default): 50,
            or more where the training set is so small that 50 epochs would be fewer than 180
            optimizer steps (see :meth:`finetune_epochs`). With a validation split, early
            stopping (``patience``) may end it sooner.
        probe_epochs: head epochs on cached features (``linear``, and ``lp-ft``'s first stage).
        feature_views: views per image in the probe's feature cache (1 = no augmentation).
        batch_size: images per step.
        lr: learning rate of the top backbone group (lower groups get ``layer_decay`` powers).
        head_lr: learning rate of the head (and of the probe).
        weight_decay: AdamW weight decay.
        layer_decay: learning-rate factor from one backbone group to the one below it.
        unfreeze_every: epochs between unfreezing two groups (``gradual``).
        warmup_epochs: linear warm-up of each group's rate after it unfreezes; then cosine.
        label_smoothing: cross-entropy label smoothing.
        mixup: MixUp's Beta(alpha, alpha) on fine-tuning batches; 0 = off.
        cutmix: CutMix's alpha likewise; 0 = off. With both on (the default, 0.2 and 1.0),
            each batch gets one of the two at random (as timm's ``Mixup`` does). The draws
            are seeded by (seed, step, rank), so a resumed run mixes as the uninterrupted one
            would.
        dropout: dropout before the head.
        preset: a classic augmentation preset name for training images; None for none.
        pipeline: a pipeline config (as saved by ``Pipeline.save``); overrides ``preset``.
        synthetic: a folder of synthetic images (same classes), mixed into training only.
        synthetic_ratio: synthetic images per real image per epoch.
        balance: ``none``, ``loss`` (class-weighted loss) or ``sampler`` (class-balanced).
        val_fraction: share of each class held out for validation (checkpoint selection and
            early stopping); 0 = none: train for the set epochs and keep the last weights
            (the usual choice with a handful of images per class). None = 0.2 when every
            class has at least ``AUTO_VAL_MIN`` images, else 0.
        bn_stats_frozen: keep every BatchNorm's running statistics fixed while fine-tuning
            (its scale and shift still train).
        patience: early-stopping patience in epochs on validation loss (0 = off).
        seed: seeds splits, augmentation, sampling and initialisation.
        devices: Lightning devices (``"auto"``, a count or a list).
        num_nodes: Lightning nodes.
        precision: None = ``16-mixed`` (``bf16-mixed`` where supported) on GPU, ``32-true`` on CPU.
        num_workers: DataLoader workers.
        cache_dir: feature-cache directory; None = ``<out>/feature_cache``.
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    pretrained: bool = True
    strategy: str = "lp-ft"
    image_size: int | None = None
    crop_pct: float | None = 1.0
    epochs: int | None = None
    probe_epochs: int = 30
    feature_views: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    layer_decay: float = 0.7
    unfreeze_every: int = 1
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    mixup: float = 0.2
    cutmix: float = 1.0
    dropout: float = 0.2
    preset: str | None = "light"
    pipeline: dict[str, Any] | None = None
    synthetic: str | None = None
    synthetic_ratio: float = 0.5
    balance: str = "none"
    val_fraction: float | None = None
    bn_stats_frozen: bool = True
    patience: int = 5
    seed: int = 0
    devices: Any = "auto"
    num_nodes: int = 1
    precision: str | None = None
    num_workers: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        def bad(name: str, bound: str) -> DataError:
            return DataError(f"{name} must be {bound}, got {getattr(self, name)!r}")

        if self.strategy not in STRATEGIES:
            raise bad("strategy", f"one of {', '.join(STRATEGIES)}")
        if self.balance not in BALANCE:
            raise bad("balance", f"one of {', '.join(BALANCE)}")
        for name in ("epochs", "probe_epochs", "unfreeze_every", "batch_size", "feature_views"):
            if name == "epochs" and self.epochs is None:
                continue
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "an integer >= 1" + (" or None" if name == "epochs" else ""))
        for name in ("lr", "head_lr"):
            if not getattr(self, name) > 0:
                raise bad(name, "> 0")
        if not 0 < self.layer_decay <= 1:
            raise bad("layer_decay", "in (0, 1]")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.dropout < 1:
            raise bad("label_smoothing" if self.label_smoothing >= 1 else "dropout", "in [0, 1)")
        for name in ("synthetic_ratio", "mixup", "cutmix"):
            if not getattr(self, name) >= 0:
                raise bad(name, ">= 0")
        if self.image_size is not None and self.image_size < 8:
            raise bad("image_size", ">= 8")
        if self.crop_pct is not None and not 0.5 < self.crop_pct <= 1.0:
            raise bad("crop_pct", "in (0.5, 1] or None")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise bad("val_fraction", "in [0, 1)")
        if self.patience < 0 or self.num_workers < 0 or self.weight_decay < 0:
            raise DataError("patience, num_workers and weight_decay must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def finetune_epochs(self, train_images: int) -> int:
        """The fine-tuning epochs for ``train_images`` training images (synthetic ones
        included): ``epochs`` when set, else 50 or as many more as make 180 optimizer steps.

        Steps are counted as one device sees them (the last partial batch is dropped when
        there is more than one batch, as the training loader does).
        """
        if self.epochs is not None:
            return self.epochs
        steps = max(1, train_images // self.batch_size)
        return max(AUTO_EPOCHS, -(-AUTO_MIN_STEPS // steps))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"unknown fine-tuning config keys: {', '.join(unknown)}")
        return cls(**d)

    def batch_mix(self, num_classes: int) -> list[MixUp]:
        """The MixUp and/or CutMix ops for fine-tuning batches (empty when both are off)."""
        ops: list[MixUp] = []
        if self.mixup > 0:
            ops.append(MixUp(alpha=self.mixup, num_classes=num_classes))
        if self.cutmix > 0:
            ops.append(CutMix(alpha=self.cutmix, num_classes=num_classes))
        return ops

    def preprocessing(self, backbone: Backbone) -> Preprocessing:
        """The backbone's preprocessing with this config's input size and crop applied."""
        pre = backbone.preprocessing
        if self.image_size is not None:
            pre = pre.scaled(self.image_size)
        if self.crop_pct is not None:
            pre = pre.with_crop(self.crop_pct)
        return pre

    def augmentation(self) -> Pipeline | None:
        if self.pipeline is not None:
            pipe = Pipeline.from_config(self.pipeline)
            pipe = Pipeline(pipe.ops, seed=self.seed)
        elif self.preset:
            pipe = make_preset(self.preset, seed=self.seed)
        else:
            return None
        if pipe.returns_tensor:
            raise DataError(
                "the augmentation pipeline must not end with normalize: the backbone's own "
                "preprocessing normalizes"
            )
        return pipe


class Classifier(nn.Module):
    """A backbone with a dropout + linear head. Frozen BatchNorm layers stay in eval mode.

    Example:
        >>> bb = create_backbone("small_cnn", pretrained=False)
        >>> Classifier(bb, 3)(torch.zeros(2, 3, 28, 28)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        dropout: float = 0.2,
        bn_stats_frozen: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bn_stats_frozen = bn_stats_frozen
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(backbone.num_features, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def train(self, mode: bool = True) -> Classifier:
        # A BatchNorm whose weights are frozen (or all of them, with bn_stats_frozen) must keep
        # using, and not update, its running statistics in train mode. Lightning's own
        # BaseFinetuning.freeze sets track_running_stats=False instead, which normalizes with
        # batch statistics in train mode: the features would change.
        super().train(mode)
        if mode:
            for m in self.backbone.modules():
                if not isinstance(m, _BatchNorm):
                    continue
                params = list(m.parameters(recurse=False))
                frozen = bool(params) and not any(p.requires_grad for p in params)
                if frozen or self.bn_stats_frozen:
                    m.eval()
        return self


@dataclass
class GroupSpec:
    """One optimizer parameter group: its learning rate and the epoch it starts training."""

    name: str
    params: list[nn.Parameter]
    lr: float
    start_epoch: int | None  # None: never trains


def _cosine_factor(
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
            rng = np.random.default_rng([self.mix_seed, self.global_step, self.global_rank])
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
                lambda step, s=g.start_epoch: _cosine_factor(
                    step, steps_per_epoch, s, self.warmup_epochs, self.epochs
                )
            )
            for g in self.groups
        ]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
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


class _Loaders(L.LightningDataModule):
    """Builds the loaders once the trainer knows this process's rank, so the (epoch, index)
    sampler can take its share itself (Lightning's DistributedSampler is turned off; Lightning
    still calls the sampler's ``set_epoch`` every epoch)."""

    def __init__(
        self,
        trainset: TrainImages,
        valset: EvalImages | None,
        batch_size: int,
        num_workers: int,
        seed: int,
        weights: np.ndarray | None,
    ) -> None:
        super().__init__()
        self.trainset, self.valset = trainset, valset
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed, self.weights = seed, weights

    def train_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = EpochSampler(len(self.trainset), self.seed, True, self.weights, rank, world)
        return DataLoader(
            self.trainset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=len(sampler) > self.batch_size,
        )

    def val_dataloader(self) -> Any:
        if self.valset is None:  # the trainer has limit_val_batches=0 then
            return DataLoader(self.trainset, batch_size=self.batch_size, sampler=[])
        return DataLoader(self.valset, batch_size=64, num_workers=self.num_workers)


def backbone_groups(
    backbone: Backbone, strategy: str, lr: float, layer_decay: float, unfreeze_every: int
) -> list[GroupSpec]:
    params = dict(backbone.body.named_parameters())
    n = len(backbone.groups)
    out = []
    for j, names in enumerate(backbone.groups):
        depth = n - 1 - j  # 0 = the group next to the head
        if strategy == "linear":
            start = None
        elif strategy == "gradual":
            start = (depth + 1) * unfreeze_every
        else:
            start = 0
        out.append(
            GroupSpec(f"backbone.{j}", [params[k] for k in names], lr * layer_decay**depth, start)
        )
    return out


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced."""

    out: Path
    model: Classifier
    classes: list[str]
    config: FinetuneConfig
    val_metrics: dict[str, Any] | None
    test_metrics: dict[str, Any] | None
    best_checkpoint: str | None
    probe_seconds: float = 0.0
    finetune_seconds: float = 0.0
    train_images_per_s: float | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _trainer(
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
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    strategy: Any = "auto"
    if torch.cuda.device_count() > 1 and config.devices not in (1, [0], "1"):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(find_unused_parameters=find_unused)
    loggers = [
        CSVLogger(str(out / "logs"), name=stage, version=""),
        TensorBoardLogger(str(out / "logs"), name="tensorboard", version=stage),
    ]
    return L.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=config.precision or default_precision(),  # type: ignore[arg-type]
        logger=loggers,
        callbacks=callbacks,
        enable_checkpointing=checkpoint,
        enable_progress_bar=progress,
        enable_model_summary=False,
        use_distributed_sampler=False,
        log_every_n_steps=1,
        deterministic=not torch.cuda.is_available(),
        num_sanity_val_steps=0,
        limit_val_batches=None if validate else 0,
        default_root_dir=str(out),
    )


def _class_weights(labels: np.ndarray, k: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (k * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _sample_weights(labels: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return 1.0 / counts[labels]


def _probe(
    config: FinetuneConfig,
    out: Path,
    cache: FeatureCache,
    model: Classifier,
    preprocess: Preprocess,
    train: LabelledImages,
    val: LabelledImages | None,
    pipeline: Pipeline | None,
    synthetic: LabelledImages | None,
    progress: bool,
) -> None:
    """Train ``model.head`` on cached frozen features (the linear probe)."""
    device = _device()
    views = config.feature_views
    pipe = pipeline if views > 1 else None
    f_train = cache.features(model.backbone, preprocess, train, views, pipe, device=device)
    f_val = (
        cache.features(model.backbone, preprocess, val, 1, device=device)[0]
        if val is not None
        else None
    )
    feats, labels = [f_train.reshape(-1, f_train.shape[-1])], [np.tile(train.labels, views)]
    if synthetic is not None and config.synthetic_ratio > 0:
        f_syn = cache.features(model.backbone, preprocess, synthetic, 1, device=device)[0]
        n = min(len(synthetic), round(config.synthetic_ratio * len(train) * views))
        pick = np.random.default_rng([config.seed, 0x5E7]).permutation(len(synthetic))[:n]
        feats.append(f_syn[pick])
        labels.append(synthetic.labels[pick])
    x = torch.cat(feats)
    y = torch.from_numpy(np.concatenate(labels))
    log.info(
        "probe: %d feature rows (%d images x %d views), cache hits %d, misses %d",
        len(x),
        len(train),
        views,
        cache.hits,
        cache.misses,
    )
    k = len(train.classes)
    group = GroupSpec("head", list(model.head.parameters()), config.head_lr, 0)
    module = ClassifierModule(
        model.head,
        [group],
        k,
        config.probe_epochs,
        config.weight_decay,
        warmup_epochs=0.0,
        label_smoothing=config.label_smoothing,
        class_weights=_class_weights(y.numpy(), k) if config.balance == "loss" else None,
    )
    generator = torch.Generator().manual_seed(config.seed)
    if config.balance == "sampler":
        w = torch.from_numpy(_sample_weights(y.numpy(), k))
        sampler: Any = torch.utils.data.WeightedRandomSampler(w, len(w), generator=generator)
        loader = DataLoader(TensorDataset(x, y), batch_size=config.batch_size, sampler=sampler)
    else:
        loader = DataLoader(
            TensorDataset(x, y), batch_size=config.batch_size, shuffle=True, generator=generator
        )
    val_loader = (
        DataLoader(TensorDataset(f_val, torch.from_numpy(val.labels)), batch_size=256)
        if val is not None and f_val is not None
        else None
    )
    trainer = _trainer(
        config, out, config.probe_epochs, "probe", [], False, progress, validate=val is not None
    )
    _fit(trainer, module, loader, val_loader)


def finetune(
    data: str | Path | LabelledImages,
    out: str | Path,
    config: FinetuneConfig | None = None,
    *,
    train_index: np.ndarray | None = None,
    test_index: np.ndarray | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    export: bool = True,
    callbacks: Sequence[Callback] = (),
) -> FinetuneResult:
    """Fine-tune ``config.backbone`` on ``data`` and write the run directory ``out``.

    Args:
        data: an ImageFolder directory or decoded images.
        out: the run directory: ``model.safetensors``, ``config.json``, ``labels.json``,
            ``checkpoints/``, ``logs/``, ``export/`` and ``report/``.
        config: the recipe; defaults to :class:`FinetuneConfig`'s.
        train_index: use only these images (the rest of a repeated split is the test set).
        test_index: images evaluated at the end (never used for training or selection).
        resume: continue an interrupted fine-tuning stage from ``checkpoints/last.ckpt``.
        overwrite: replace a previous run in ``out`` (without it, and without ``resume``, a
            directory that holds checkpoints or a model is refused: nothing is lost by mistake).
        progress: show Lightning's progress bar.
        export: write the TorchScript and ONNX models.
        callbacks: extra Lightning callbacks for the fine-tuning stage.
    """
    from transfer.evaluate import evaluate_model, write_report
    from transfer.export import export_model, save_run

    config = config or FinetuneConfig()
    out = Path(out)
    previous = [p for p in (out / "checkpoints", out / "model.safetensors") if p.exists()]
    if previous and not resume:
        if not overwrite:
            raise DataError(
                f"{str(out)!r} already holds a run ({previous[0].name}); resume it "
                "(--resume), replace it (--overwrite) or choose another directory"
            )
        import shutil

        for name in ("checkpoints", "logs", "report", "export"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    real = data if isinstance(data, LabelledImages) else load_folder(data)
    pool = real.subset(train_index) if train_index is not None else real
    check_classes(pool.labels, pool.classes, 1, "to train")
    test = real.subset(test_index) if test_index is not None else None
    val_fraction = config.val_fraction
    if val_fraction is None:
        counts = np.bincount(pool.labels)
        smallest = int(counts[counts > 0].min())
        val_fraction = 0.2 if smallest >= AUTO_VAL_MIN else 0.0
    if val_fraction > 0:
        tr_idx, val_idx = stratified_split(pool.labels, val_fraction, config.seed, pool.classes)
        train, val = pool.subset(tr_idx), pool.subset(val_idx)
    else:
        train, val = pool, None
    synthetic = load_folder(config.synthetic, classes=real.classes) if config.synthetic else None
    pipeline = config.augmentation()
    k = len(real.classes)

    backbone = create_backbone(config.backbone, config.weights, config.pretrained)
    pre = config.preprocessing(backbone)
    preprocess = Preprocess(pre)
    model = Classifier(backbone, k, config.dropout, config.bn_stats_frozen)
    for p in backbone.parameters():
        p.requires_grad_(False)
    log.info(
        "train %d, val %d, test %s images; classes %s",
        len(train),
        len(val) if val is not None else 0,
        len(test) if test is not None else "-",
        train.counts(),
    )

    t0 = time.perf_counter()
    # one cache per run: its shards are read from disk once, for the probe and the evaluation
    cache = FeatureCache(config.cache_dir or out / "feature_cache")
    if config.strategy in ("linear", "lp-ft"):
        _probe(config, out, cache, model, preprocess, train, val, pipeline, synthetic, progress)
    probe_seconds = time.perf_counter() - t0

    best = None
    epochs = 0  # fine-tuning epochs run (none for the linear probe)
    t1 = time.perf_counter()
    images_per_s = None
    if config.strategy != "linear":
        head_lr = config.lr if config.strategy == "lp-ft" else config.head_lr
        groups = [GroupSpec("head", list(model.head.parameters()), head_lr, 0)]
        groups += backbone_groups(
            backbone, config.strategy, config.lr, config.layer_decay, config.unfreeze_every
        )
        for p in model.parameters():
            p.requires_grad_(True)
        if torch.cuda.is_available():
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        trainset = TrainImages(
            train, preprocess, pipeline, synthetic, config.synthetic_ratio, config.seed
        )
        epochs = config.finetune_epochs(len(trainset))
        if config.epochs is None:
            log.info("fine-tuning for %d epochs (%d training images)", epochs, len(trainset))
        weights = _sample_weights(train.labels, k) if config.balance == "sampler" else None
        if weights is not None and trainset.n_synthetic:
            weights = np.concatenate([weights, np.full(trainset.n_synthetic, weights.mean())])
        loaders = _Loaders(
            trainset,
            EvalImages(val, preprocess) if val is not None else None,
            config.batch_size,
            config.num_workers,
            config.seed,
            weights,
        )
        module = ClassifierModule(
            model,
            groups,
            k,
            epochs,
            config.weight_decay,
            config.warmup_epochs,
            config.label_smoothing,
            _class_weights(train.labels, k) if config.balance == "loss" else None,
            batch_mix=config.batch_mix(k),
            mix_seed=config.seed,
        )
        ckpt = ModelCheckpoint(
            dirpath=str(out / "checkpoints"),
            filename="best" if val is not None else "final",
            monitor="val/loss" if val is not None else None,
            save_last=True,
            save_top_k=1,
        )
        stage_callbacks: list[Callback] = [ckpt, GradualUnfreezing(groups), *callbacks]
        if config.patience and val is not None:
            stage_callbacks.append(EarlyStopping("val/loss", patience=config.patience))
        trainer = _trainer(
            config,
            out,
            epochs,
            "finetune",
            stage_callbacks,
            True,
            progress,
            find_unused=config.strategy == "gradual",
            validate=val is not None,
        )
        last = out / "checkpoints" / "last.ckpt"
        model.train()
        _fit(
            trainer,
            module,
            datamodule=loaders,
            ckpt_path=str(last) if resume and last.is_file() else None,
        )
        images_per_s = _last_logged(trainer, "train/images_per_s")
        best = (ckpt.best_model_path or None) if val is not None else None
        if best:
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        model = model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    finetune_seconds = time.perf_counter() - t1

    model = model.cpu().eval()
    save_run(out, model, real.classes, pre, config)
    if export:
        export_model(out, model, pre)

    def score(part: LabelledImages | None) -> dict[str, Any] | None:
        if part is None:
            return None
        if config.strategy == "linear":  # frozen backbone: features come from the cache
            return _evaluate_cached(cache, model, preprocess, part)
        return evaluate_model(model, preprocess, part)

    val_metrics, test_metrics = score(val), score(test)
    if test_metrics is not None:
        report_metrics, split = test_metrics, "test"
    elif val_metrics is not None:
        report_metrics, split = val_metrics, "validation"
    else:  # nothing held out: say so, the numbers are optimistic
        report_metrics, split = score(train), "training (optimistic)"
    write_report(
        out / "report",
        report_metrics,
        real.classes,
        config.to_dict(),
        logs=out / "logs",
        title=f"{config.backbone} / {config.strategy}",
        extra={
            "split": split,
            "finetune_epochs": epochs,
            "skipped": [list(s) for s in real.skipped],
        },
    )
    return FinetuneResult(
        out,
        model,
        list(real.classes),
        config,
        val_metrics,
        test_metrics,
        best,
        probe_seconds,
        finetune_seconds,
        images_per_s,
        list(real.skipped),
    )


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _evaluate_cached(
    cache: FeatureCache, model: Classifier, preprocess: Preprocess, data: LabelledImages
) -> dict[str, Any]:
    from transfer.evaluate import classification_metrics

    feats = cache.features(model.backbone, preprocess, data, 1, device=_device())[0]
    with torch.inference_mode():
        probs = model.head.eval()(feats).softmax(1).numpy()
    return classification_metrics(data.labels, probs, data.classes)


def _fit(trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
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


def _last_logged(trainer: L.Trainer, key: str) -> float | None:
    value = trainer.logged_metrics.get(key)
    return float(value) if value is not None else None
