"""What defines a fine-tuning run, as plain data: :class:`FinetuneConfig` and its constants.

This module imports neither torch nor Lightning, so the CLI reads every default, bound and
choice list from here (``augment finetune --help`` shows them without a copy of its own). Each
bound is checked once, here, where the value enters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from augmentor._validation import check_choice, check_int, check_number
from transfer.errors import DataError

if TYPE_CHECKING:
    from augmentor.ops.mix import MixUp
    from augmentor.pipeline import Pipeline
    from transfer.backbones import Backbone
    from transfer.preprocess import Preprocessing

__all__ = [
    "AUTO_EPOCHS",
    "AUTO_MIN_STEPS",
    "AUTO_VAL_MIN",
    "BALANCE",
    "CALIBRATION",
    "CROP_PCT",
    "STRATEGIES",
    "SYNTHETIC_MODES",
    "TTA_MODES",
    "FinetuneConfig",
    "TuneConfig",
    "check_crop_pct",
]

STRATEGIES = ("linear", "lp-ft", "gradual", "full")
SYNTHETIC_MODES = ("extra", "replace")
BALANCE = ("none", "loss", "sampler")
# test-time views averaged inside the served (and exported) model (transfer.calibration)
TTA_MODES = ("none", "flip", "flip+scale")
# where the temperature is fitted: ``auto`` = the validation split when there is one, else
# out-of-fold predictions for the linear probe (cheap: cached features), else none (folds of a
# fine-tuned recipe cost CALIBRATION_FOLDS more runs: ask for them with ``folds``)
CALIBRATION = ("auto", "validation", "folds", "none")
CALIBRATION_FOLDS = 3
# (low, high]: the share of the short side a centre crop may keep
CROP_PCT = (0.5, 1.0)
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


def check_crop_pct(
    value: Any, *, allow_none: bool = False, error: type[Exception] = DataError
) -> Any:
    """The one check of a centre-crop share, in ``CROP_PCT`` = (low, high] (None if allowed)."""
    lo, hi = CROP_PCT
    return check_number(
        None, "crop_pct", value, lo, hi, lo_open=True, allow_none=allow_none, error=error
    )


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
        synthetic_mode: how they are mixed in: ``extra`` (``synthetic_ratio`` extra slots per
            real image per epoch, filled with a fresh seeded choice of synthetic images) or
            ``replace`` (each real image is replaced by one of its own variations with
            probability ``replace_p``; the folder must hold variations, ``augment sample
            --like``).
        synthetic_ratio: synthetic images per real image per epoch (``extra``).
        replace_p: the probability that a real image is replaced by one of its variations
            (``replace``).
        duplicate_ratio: extra slots per real image per epoch filled with further
            classic-augmented copies of real images: the control of ``synthetic_ratio``
            (``compare``'s "duplicated reals").
        steps: fine-tuning optimizer steps, overriding ``epochs`` (``compare`` gives every
            configuration of an arm the same number).
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
        num_workers: DataLoader workers for fine-tuning; None (the default): on a GPU machine
            enough to keep the GPU fed (the CPU count less one, at most 8), on a CPU-only
            machine none (workers would take the cores the training step uses).
        cache_dir: feature-cache directory; None = ``<out>/feature_cache``.
        tta: test-time augmentation inside the served and exported model: ``none``, ``flip``
            (the image and its mirror) or ``flip+scale`` (those and both zoomed in): the
            softmax is averaged over the views. Use flips only where a mirrored image keeps
            its class (``augment tune`` says whether it does for your data).
        calibration: where the temperature of the served probabilities is fitted:
            ``validation`` (the validation split), ``folds`` (out-of-fold predictions of the
            same recipe on ``CALIBRATION_FOLDS`` folds: that many more runs), ``none``
            (temperature 1), or ``auto`` (the default): validation when there is a
            validation split, folds for the linear probe (cached features make them cheap),
            else none.

    Example:
        >>> FinetuneConfig(strategy="linear").finetune_epochs(100)
        60
        >>> FinetuneConfig(lr=0)
        Traceback (most recent call last):
        ...
        transfer.errors.DataError: lr must be > 0, got 0
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
    synthetic_mode: str = "extra"
    synthetic_ratio: float = 0.5
    replace_p: float = 0.5
    duplicate_ratio: float = 0.0
    steps: int | None = None
    balance: str = "none"
    val_fraction: float | None = None
    bn_stats_frozen: bool = True
    patience: int = 5
    seed: int = 0
    devices: Any = "auto"
    num_nodes: int = 1
    precision: str | None = None
    num_workers: int | None = None
    cache_dir: str | None = None
    tta: str = "none"
    calibration: str = "auto"

    def __post_init__(self) -> None:
        e = DataError
        check_choice(None, "strategy", self.strategy, STRATEGIES, error=e)
        check_choice(None, "balance", self.balance, BALANCE, error=e)
        check_choice(None, "synthetic_mode", self.synthetic_mode, SYNTHETIC_MODES, error=e)
        check_choice(None, "tta", self.tta, TTA_MODES, error=e)
        check_choice(None, "calibration", self.calibration, CALIBRATION, error=e)
        check_number(None, "replace_p", self.replace_p, 0, 1, error=e)
        check_int(None, "steps", self.steps, lo=1, allow_none=True, error=e)
        check_int(None, "epochs", self.epochs, lo=1, allow_none=True, error=e)
        for name in ("probe_epochs", "unfreeze_every", "batch_size", "feature_views", "num_nodes"):
            check_int(None, name, getattr(self, name), lo=1, error=e)
        for name in ("patience", "seed"):
            check_int(None, name, getattr(self, name), lo=0, error=e)
        check_int(None, "num_workers", self.num_workers, lo=0, allow_none=True, error=e)
        for name in ("lr", "head_lr"):
            check_number(None, name, getattr(self, name), lo=0, lo_open=True, error=e)
        check_number(None, "layer_decay", self.layer_decay, 0, 1, lo_open=True, error=e)
        check_number(None, "label_smoothing", self.label_smoothing, 0, 1, hi_open=True, error=e)
        check_number(None, "dropout", self.dropout, 0, 1, hi_open=True, error=e)
        for name in (
            "synthetic_ratio",
            "duplicate_ratio",
            "mixup",
            "cutmix",
            "weight_decay",
            "warmup_epochs",
        ):
            check_number(None, name, getattr(self, name), lo=0, error=e)
        check_int(None, "image_size", self.image_size, lo=8, allow_none=True, error=e)
        lo, hi = CROP_PCT
        check_number(
            None, "crop_pct", self.crop_pct, lo, hi, lo_open=True, allow_none=True, error=e
        )
        check_number(
            None, "val_fraction", self.val_fraction, 0, 1, hi_open=True, allow_none=True, error=e
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def finetune_epochs(self, train_images: int) -> int:
        """The fine-tuning epochs for ``train_images`` training images (synthetic ones
        included): ``epochs`` when set, else 50 or as many more as make 180 optimizer steps.

        Steps are counted as one device sees them (the last partial batch is dropped when
        there is more than one batch, as the training loader does).
        """
        per_epoch = max(1, train_images // self.batch_size)
        if self.steps is not None:
            return -(-self.steps // per_epoch)
        if self.epochs is not None:
            return self.epochs
        return max(AUTO_EPOCHS, -(-AUTO_MIN_STEPS // per_epoch))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"unknown fine-tuning config keys: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (what the CLI shows and uses)."""
        return {f.name: f.default for f in fields(cls)}[name]

    def batch_mix(self, num_classes: int) -> list[MixUp]:
        """The MixUp and/or CutMix ops for fine-tuning batches (empty when both are off)."""
        from augmentor.ops.mix import CutMix, MixUp

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
        """The classic augmentation of training images (``pipeline`` over ``preset``)."""
        from augmentor.pipeline import Pipeline
        from augmentor.presets import preset as make_preset

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


# `augment tune`: the smallest budget it accepts, in minutes (a guard before any estimate)
TUNE_MIN_MINUTES = 0.1


@dataclass(frozen=True)
class TuneConfig:
    """What defines an ``augment tune`` search (written to ``tune.json``).

    Args:
        minutes: the wall-time budget of the whole search.
        repeats: repeated stratified splits of DATA that score every candidate (>= 2).
        test_fraction: share of each class held out in each split for scoring.
        views: feature views per training image in the screening probe: the clean image and
            ``views - 1`` augmented copies.
        backbone, weights, pretrained, image_size, crop_pct: the frozen network and its input,
            as in :class:`FinetuneConfig` (tune at the size you will fine-tune at).
        confirm_steps: optimizer steps of each confirming fine-tuning run (0: screening only).
            Confirmation runs only when the budget left holds 2+ splits of the default and the
            winner.
        seed: seeds the splits and the augmented views.
    """

    minutes: float = 10.0
    repeats: int = 10
    test_fraction: float = 0.3
    views: int = 4
    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    pretrained: bool = True
    image_size: int | None = None
    crop_pct: float | None = 1.0
    confirm_steps: int = 60
    seed: int = 0

    def __post_init__(self) -> None:
        e = DataError
        check_number(None, "minutes", self.minutes, TUNE_MIN_MINUTES, error=e)
        check_int(None, "repeats", self.repeats, lo=2, error=e)
        check_number(
            None, "test_fraction", self.test_fraction, 0, 1, lo_open=True, hi_open=True, error=e
        )
        check_int(None, "views", self.views, lo=2, error=e)
        check_int(None, "image_size", self.image_size, lo=8, allow_none=True, error=e)
        check_crop_pct(self.crop_pct, allow_none=True)
        check_int(None, "confirm_steps", self.confirm_steps, lo=0, error=e)
        check_int(None, "seed", self.seed, lo=0, error=e)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def default(cls, name: str) -> Any:
        return {f.name: f.default for f in fields(cls)}[name]

    def finetune_config(self, **changes: Any) -> FinetuneConfig:
        """The fine-tuning recipe with this search's network and input."""
        return FinetuneConfig(
            backbone=self.backbone,
            weights=self.weights,
            pretrained=self.pretrained,
            image_size=self.image_size,
            crop_pct=self.crop_pct,
            seed=self.seed,
            **changes,
        )
