"""Fine-tuning a pretrained backbone on a small dataset: :func:`finetune`, a short script over
named stages.

Strategies (:data:`transfer.config.STRATEGIES`):

* ``linear``: linear probe. The backbone is frozen (BatchNorm too, in train mode as well), its
  features come from the :class:`~transfer.features.FeatureCache` (optionally K augmented views
  per image) and only the head trains (:mod:`transfer.probe`).
* ``lp-ft``: the linear probe first, then the whole network fine-tunes at a small learning rate
  starting from the probed head (Kumar et al., 2022), with layer-wise decayed learning rates.
* ``gradual``: the head trains first; backbone groups unfreeze from the top, one every
  ``unfreeze_every`` epochs, each with a learning rate ``layer_decay`` times the one above.
* ``full``: everything trains from the start (same layer-wise rates).

The model is :class:`~transfer.classifier.Classifier`, its training system
:class:`~transfer.module.ClassifierModule`, its data :class:`~transfer.data.FinetuneData`.

Why one module of ~540 lines: it is the orchestration of one run (the run directory, its
resume checks, the stages in order, the guard that keeps the better of probe and fine-tuned
model, the final report); each stage's body lives in its own module (probe, stages, module,
data, export), and splitting the script would scatter one sequence over files.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from augmentor.guards import DivergenceGuard
from augmentor.io import prepare_run_dir
from augmentor.pipeline import Pipeline
from augmentor.seeding import global_seed
from augmentor.trainer import (
    DivergenceError,
    check_devices,
    is_global_zero,
    load_checkpoint_file,
)
from transfer.backbones import create_backbone
from transfer.calibration import (
    Calibration,
    apply_temperature,
    fit_temperature,
    nll,
    served_view_probs,
)
from transfer.classifier import Classifier, GroupSpec, backbone_groups
from transfer.config import AUTO_MIN_STEPS, AUTO_VAL_MIN, CALIBRATION_FOLDS, FinetuneConfig
from transfer.data import EvalImages, FinetuneData, TrainImages, variations_of
from transfer.errors import DataError
from transfer.features import FeatureCache
from transfer.images import LabelledImages, load_folder
from transfer.module import ClassifierModule, GradualUnfreezing, class_weights, sample_weights
from transfer.preprocess import Preprocessing, PreprocessModule
from transfer.probe import cached_probs, evaluate_cached, load_probe_head, train_probe
from transfer.splits import check_classes, stratified_folds, stratified_split
from transfer.stages import device_name, fit_stage, last_logged, stage_trainer

log = logging.getLogger(__name__)

__all__ = ["FinetuneResult", "RunData", "finetune"]


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
    kept: str | None = None  # lp-ft: which model was kept, the fine-tuned or the probe, and why
    calibration: Calibration | None = None  # the served model's TTA and temperature
    test_probs: np.ndarray | None = None  # served probabilities on the test part, before T


@dataclass
class RunData:
    """The images of one run: the whole set (for its classes) and its parts."""

    real: LabelledImages
    train: LabelledImages
    val: LabelledImages | None
    test: LabelledImages | None
    synthetic: LabelledImages | None
    variations: list[list[int]] | None = None  # real index -> its variations in synthetic


@dataclass
class StageResult:
    """What the fine-tuning stage leaves: the epochs it ran, the best checkpoint, throughput."""

    epochs: int = 0
    best: str | None = None
    images_per_s: float | None = None
    kept: str | None = None
    lr_scale: float = 1.0


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
    config = config or FinetuneConfig()
    check_devices(config.devices)  # before any work: a probe stage is not wasted on it
    with global_seed(config.seed):  # initial weights and dropout; the caller's state is kept
        return _finetune(
            data, Path(out), config, train_index, test_index, resume, overwrite, progress,
            export, callbacks,
        )  # fmt: skip


# settings that may change between an interrupted run and its resumption
_EXECUTION = ("devices", "num_nodes", "num_workers", "cache_dir", "precision")
# what a run directory holds besides its checkpoints and run.json (replaced by --overwrite)
PRODUCTS = (
    "model.safetensors",
    "config.json",
    "labels.json",
    "preprocess.json",
    "probe-head.safetensors",
    "calibration.json",
    "calibration",
    "export",
    "report",
    "logs",
)


def _finetune(
    data: str | Path | LabelledImages,
    out: Path,
    config: FinetuneConfig,
    train_index: np.ndarray | None,
    test_index: np.ndarray | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
    export: bool,
    callbacks: Sequence[Callback],
) -> FinetuneResult:
    from transfer.export import export_model, save_run

    parts = split_data(data, config, train_index, test_index)
    if is_global_zero():  # the other processes of a multi-device run find it claimed
        prepare_run_dir(
            out,
            run_identity(config, parts),
            resume=resume,
            overwrite=overwrite,
            products=PRODUCTS,
            error=DataError,
        )
    pipeline = config.augmentation()
    model, pre = build_classifier(config, len(parts.real.classes))
    preprocess = PreprocessModule(pre)

    t0 = time.perf_counter()
    # one cache per run: its shards are read from disk once, for the probe and the evaluation
    cache = FeatureCache(config.cache_dir or out / "feature_cache")
    name = "probe"
    try:
        # a resumed run, and the other processes of a multi-device run (started once rank 0
        # has probed), load the probed head instead of training it again
        reuse = resume or not is_global_zero()
        if config.strategy in ("linear", "lp-ft") and not (reuse and load_probe_head(out, model)):
            train_probe(
                config, out, cache, model, preprocess, parts.train, parts.val, pipeline,
                parts.synthetic, progress,
            )  # fmt: skip
        t1 = time.perf_counter()
        stage = StageResult()
        if config.strategy != "linear":
            name = "fine-tuning"
            model, stage = finetune_stage(
                config, out, model, preprocess, parts, pipeline, resume, progress, callbacks
            )
            if config.strategy == "lp-ft":
                model, stage.kept = keep_the_better(config, out, model, preprocess, cache, parts)
    except DivergenceError as e:
        last = out / "checkpoints" / "last.ckpt"
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint yet"
        raise DivergenceError(
            f"{e} (the {name} stage); training stopped: {kept}, nothing of the diverged epoch "
            "was saved"
        ) from None
    t2 = time.perf_counter()

    result = FinetuneResult(
        out, model, list(parts.real.classes), config, None, None, stage.best,
        t1 - t0, t2 - t1, stage.images_per_s, list(parts.real.skipped), stage.kept,
    )  # fmt: skip
    if not is_global_zero():  # rank 0 alone writes the run (every rank holds the same model)
        return result
    calibration = calibrate(config, out, model, preprocess, cache, parts)
    result.calibration = calibration
    result.val_metrics, result.test_metrics, result.test_probs = report_run(
        out, config, model, preprocess, cache, parts, stage, calibration
    )
    model = model.cpu().eval()
    save_run(out, model, parts.real.classes, pre, config)
    calibration.write(out)
    if export:
        export_model(out, model, pre, calibration.tta, calibration.temperature)
    result.model = model
    return result


def run_identity(config: FinetuneConfig, parts: RunData) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one: the settings (not where or on
    how many devices it runs), the classes and the content of its training images."""
    h = hashlib.sha256()
    for label, key in zip(parts.train.labels, parts.train.content_keys()):
        h.update(f"{int(label)}:{key};".encode())
    if parts.val is not None:
        h.update(b"|val|" + ",".join(parts.val.content_keys()).encode())
    if parts.synthetic is not None:
        h.update(b"|synthetic|" + ",".join(parts.synthetic.content_keys()).encode())
    settings = {k: v for k, v in config.to_dict().items() if k not in _EXECUTION}
    return {**settings, "classes": list(parts.real.classes), "data_fingerprint": h.hexdigest()}


def split_data(
    data: str | Path | LabelledImages,
    config: FinetuneConfig,
    train_index: np.ndarray | None,
    test_index: np.ndarray | None,
) -> RunData:
    """Decode the data and cut it into training, validation, test and synthetic parts."""
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
    if config.calibration == "validation" and val is None:
        raise DataError(
            "calibration='validation' needs a validation split: set val_fraction > 0 "
            "(or use calibration='folds')"
        )
    synthetic = _load_synthetic(config.synthetic, real.classes) if config.synthetic else None
    variations = None
    if synthetic is not None and config.synthetic_mode == "replace":
        assert config.synthetic is not None
        variations = variations_of(train, synthetic, config.synthetic)
    log.info(
        "train %d, val %d, test %s images; classes %s",
        len(train),
        len(val) if val is not None else 0,
        len(test) if test is not None else "-",
        train.counts(),
    )
    return RunData(real, train, val, test, synthetic, variations)


def _load_synthetic(folder: str | Path, classes: list[str]) -> LabelledImages | None:
    """The synthetic folder's images; None (and a warning) when a filter kept none of them, so
    the run trains on its real images alone instead of failing after the generator's work."""
    root = Path(folder)
    found = [c for c in root.iterdir() if c.is_dir()] if root.is_dir() else None
    if found is not None and not any(p.is_file() for c in found for p in c.iterdir()):
        log.warning(
            "%s holds no synthetic images (the filter kept none): training on the real "
            "images alone",
            root,
        )
        return None
    return load_folder(root, classes=classes)


def build_classifier(config: FinetuneConfig, num_classes: int) -> tuple[Classifier, Preprocessing]:
    """The backbone with a fresh head (backbone frozen), and its preprocessing."""
    backbone = create_backbone(config.backbone, config.weights, config.pretrained)
    pre = config.preprocessing(backbone)
    model = Classifier(backbone, num_classes, config.dropout, config.bn_stats_frozen)
    for p in backbone.parameters():
        p.requires_grad_(False)
    return model, pre


def finetune_stage(
    config: FinetuneConfig,
    out: Path,
    model: Classifier,
    preprocess: PreprocessModule,
    parts: RunData,
    pipeline: Pipeline | None,
    resume: bool,
    progress: bool,
    callbacks: Sequence[Callback],
) -> tuple[Classifier, StageResult]:
    """Train the whole network (``lp-ft``, ``gradual``, ``full``) with checkpoints and resume."""
    train, val = parts.train, parts.val
    k = len(parts.real.classes)
    head_lr = config.lr if config.strategy == "lp-ft" else config.head_lr
    groups = [GroupSpec("head", list(model.head.parameters()), head_lr, 0)]
    groups += backbone_groups(
        model.backbone, config.strategy, config.lr, config.layer_decay, config.unfreeze_every
    )
    for p in model.parameters():
        p.requires_grad_(True)
    if torch.cuda.is_available():
        model = model.to(memory_format=torch.channels_last)
    replace = config.synthetic_mode == "replace" and parts.synthetic is not None
    trainset = TrainImages(
        train,
        preprocess,
        pipeline,
        parts.synthetic,
        config.synthetic_ratio if config.synthetic_mode == "extra" else 0.0,
        config.seed,
        variations=parts.variations if replace else None,
        replace_p=config.replace_p if replace else 0.0,
        duplicate_ratio=config.duplicate_ratio,
    )
    epochs = config.finetune_epochs(len(trainset))
    if config.epochs is None:
        log.info("fine-tuning for %d epochs (%d training images)", epochs, len(trainset))
    steps = config.steps or epochs * max(1, len(trainset) // config.batch_size)
    lr_scale, warmup_floor = short_run_schedule(config, steps)
    weights = sample_weights(train.labels, k) if config.balance == "sampler" else None
    if weights is not None and trainset.n_synthetic:
        weights = np.concatenate([weights, np.full(trainset.n_synthetic, weights.mean())])
    loaders = FinetuneData(
        trainset,
        EvalImages(val, preprocess) if val is not None else None,
        config.batch_size,
        loader_workers(config),
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
        class_weights(train.labels, k) if config.balance == "loss" else None,
        batch_mix=config.batch_mix(k),
        mix_seed=config.seed,
        lr_scale=lr_scale,
        min_warmup_fraction=warmup_floor,
    )
    ckpt = ModelCheckpoint(
        dirpath=str(out / "checkpoints"),
        filename="best" if val is not None else "final",
        monitor="val/loss" if val is not None else None,
        save_last=True,
        save_top_k=1,
    )
    stage_callbacks: list[Callback] = [
        DivergenceGuard(),  # before the epoch's checkpoint: a diverged epoch is never saved
        ckpt,
        GradualUnfreezing(groups),
        *callbacks,
    ]
    if config.patience and val is not None:
        stage_callbacks.append(EarlyStopping("val/loss", patience=config.patience))
    trainer = stage_trainer(
        config,
        out,
        epochs,
        "finetune",
        stage_callbacks,
        True,
        progress,
        validate=val is not None,
        resume=resume,
    )
    last = out / "checkpoints" / "last.ckpt"
    model.train()
    fit_stage(
        trainer,
        module,
        datamodule=loaders,
        ckpt_path=str(last) if resume and last.is_file() else None,
    )
    best = (ckpt.best_model_path or None) if val is not None else None
    if best:
        module.load_state_dict(load_checkpoint_file(best)["state_dict"])
    model = model.to(memory_format=torch.contiguous_format)
    rate = last_logged(trainer, "train/images_per_s")
    return model, StageResult(epochs, best, rate, lr_scale=lr_scale)


# lp-ft runs shorter than AUTO_MIN_STEPS: rates scaled by (steps / AUTO_MIN_STEPS) ** POWER and
# a warm-up over at least WARMUP of the steps (chosen on validation images, BENCHMARKS.md)
SHORT_RUN_LR_POWER = 1.0
SHORT_RUN_WARMUP = 0.2


def loader_workers(config: FinetuneConfig) -> int:
    """The DataLoader workers of the fine-tuning stage (``config.num_workers``, or the auto
    rule: on a GPU machine the CPU count less one, at most 8; else none)."""
    import os

    if config.num_workers is not None:
        return config.num_workers
    if not torch.cuda.is_available():
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def short_run_schedule(config: FinetuneConfig, steps: int) -> tuple[float, float]:
    """``(lr_scale, min_warmup_fraction)`` for a fine-tuning stage of ``steps`` optimizer steps.

    LP-FT starts from the probe's head: a full-rate update of the whole network can throw away
    what the probe found, and a short run has no steps left to recover (10 images per class, 3
    epochs: the probe reached training accuracy 1.00, fine-tuning at 1e-3 ended at 0.73). Below
    ``AUTO_MIN_STEPS`` (180) steps, lp-ft's rates shrink with the step count and the warm-up
    covers a larger share of them. Runs of 180 steps or more (every default run) are unchanged.
    """
    if config.strategy != "lp-ft" or steps >= AUTO_MIN_STEPS:
        return 1.0, 0.0
    return (steps / AUTO_MIN_STEPS) ** SHORT_RUN_LR_POWER, SHORT_RUN_WARMUP


# Without held-out images the training accuracy can only catch a collapse, not rank two good
# models (mixing and label smoothing keep a healthy fine-tuned network a point or so below its
# probe there): the probe is kept when fine-tuning lost more than this much of it. Measured on
# 10-per-class fashion-mnist-subset, textures and lfw at 3 and 8 epochs (BENCHMARKS.md):
# healthy runs lost at most 1 point, collapsed ones 3 to 27.
COLLAPSE_MARGIN = 0.05


def keep_the_better(
    config: FinetuneConfig,
    out: Path,
    model: Classifier,
    preprocess: PreprocessModule,
    cache: FeatureCache,
    parts: RunData,
) -> tuple[Classifier, str]:
    """LP-FT's promise: never worse than its own probe. Score the fine-tuned model and the
    probe (the backbone the run started from, with the probed head) on the data the run may
    use for choosing and keep the better; the report says which and why.

    With a validation split the better accuracy there wins (a tie keeps the fine-tuned
    model). Without one, the training images (no augmentation) can only show a collapse: the
    probe is kept when the fine-tuned model is more than ``COLLAPSE_MARGIN`` below it.
    """
    from transfer.evaluate import evaluate_model

    with global_seed(config.seed):  # the very backbone the run started from (its first draw)
        probe, _ = build_classifier(config, len(parts.real.classes))
    if not load_probe_head(out, probe):
        return model, "fine-tuned (no probe head to compare with)"
    held_out = parts.val is not None
    ref = parts.val if parts.val is not None else parts.train
    split = "validation" if held_out else "training"
    tuned = evaluate_model(model.to(device_name()), preprocess, ref)["accuracy"]
    probed = evaluate_cached(cache, probe, preprocess, ref)["accuracy"]
    model.cpu()
    lost = probed - tuned
    if (held_out and lost > 0) or (not held_out and lost > COLLAPSE_MARGIN):
        log.warning(
            "the fine-tuned model scores %.4f on the %s images, its probe %.4f: keeping the probe",
            tuned,
            split,
            probed,
        )
        return probe, f"probe ({split} accuracy {probed:.4f} against {tuned:.4f} fine-tuned)"
    return model, f"fine-tuned ({split} accuracy {tuned:.4f}; its probe {probed:.4f})"


def report_run(
    out: Path,
    config: FinetuneConfig,
    model: Classifier,
    preprocess: PreprocessModule,
    cache: FeatureCache,
    parts: RunData,
    stage: StageResult,
    calibration: Calibration,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, np.ndarray | None]:
    """Score the validation and test parts as the served model answers (TTA, temperature)
    and write ``out/report``, with the calibration before and after; returns both scores."""
    from transfer.calibration import calibration_report
    from transfer.evaluate import classification_metrics, write_report

    raw: dict[str, np.ndarray] = {}

    def score(part: LabelledImages | None, name: str) -> dict[str, Any] | None:
        if part is None:
            return None
        raw[name] = held_out_probs(config, model, preprocess, cache, part, calibration.tta)
        p = apply_temperature(raw[name], calibration.temperature)
        return classification_metrics(part.labels, p, part.classes, part.sources)

    val_metrics, test_metrics = score(parts.val, "val"), score(parts.test, "test")
    report_metrics: dict[str, Any] | None
    if test_metrics is not None:
        report_metrics, split, scored, key = test_metrics, "test", parts.test, "test"
    elif val_metrics is not None:
        report_metrics, split, scored, key = val_metrics, "validation", parts.val, "val"
    else:  # nothing held out: say so, the numbers are optimistic
        report_metrics = score(parts.train, "train")
        split, scored, key = "training (optimistic)", parts.train, "train"
    assert report_metrics is not None and scored is not None
    _, calib = calibration_report(out / "report", calibration, raw[key], scored.labels, split)
    calib["nll_before_on_report_split"] = nll(raw[key], scored.labels)
    write_report(
        out / "report",
        report_metrics,
        parts.real.classes,
        config.to_dict(),
        logs=out / "logs",
        title=f"{config.backbone} / {config.strategy}",
        extra={
            "split": split,
            "finetune_epochs": stage.epochs,
            "kept": stage.kept,
            "lr_scale": stage.lr_scale,
            "skipped": [list(s) for s in parts.real.skipped],
            "calibration": calib,
        },
        images=scored,
    )
    return val_metrics, test_metrics, raw.get("test")


def held_out_probs(
    config: FinetuneConfig,
    model: Classifier,
    preprocess: PreprocessModule,
    cache: FeatureCache,
    part: LabelledImages,
    tta: str,
) -> np.ndarray:
    """The served probabilities before the temperature (TTA-averaged) of ``part``."""
    if config.strategy == "linear" and tta == "none":  # frozen backbone: cached features
        return cached_probs(cache, model, preprocess, part)
    return served_view_probs(model.to(device_name()), preprocess, part, tta)


def calibrate(
    config: FinetuneConfig,
    out: Path,
    model: Classifier,
    preprocess: PreprocessModule,
    cache: FeatureCache,
    parts: RunData,
) -> Calibration:
    """Fit the served model's temperature on held-out predictions (``config.calibration``):
    the validation split, or out-of-fold predictions of the same recipe on the training
    images, each fold's model predicting the images it did not train on."""
    mode = config.calibration
    if mode == "auto":
        if parts.val is not None:
            mode = "validation"
        else:
            mode = "folds" if config.strategy == "linear" else "none"
    if mode == "none":
        note = "not calibrated (no validation split; calibration='folds' fits it out of fold)"
        return Calibration(config.tta, note=note if config.calibration == "auto" else "")
    if mode == "validation":
        assert parts.val is not None  # split_data refuses the combination otherwise
        labels = parts.val.labels
        probs = held_out_probs(config, model, preprocess, cache, parts.val, config.tta)
        fitted_on = "validation"
    else:
        train = parts.train
        counts = np.bincount(train.labels)
        if int(counts[counts > 0].min()) < CALIBRATION_FOLDS:
            return Calibration(
                config.tta,
                note=f"not calibrated: a class has fewer than {CALIBRATION_FOLDS} training "
                "images, too few for out-of-fold predictions",
            )
        probs, labels = out_of_fold_probs(config, out, train, cache)
        fitted_on = "out-of-fold"
    t = fit_temperature(np.log(np.clip(probs, 1e-12, None)), labels)
    after = apply_temperature(probs, t)
    log.info("temperature %.3f fitted on %d %s predictions", t, len(labels), fitted_on)
    return Calibration(
        config.tta, t, fitted_on, len(labels), nll(probs, labels), nll(after, labels)
    )


def out_of_fold_probs(
    config: FinetuneConfig, out: Path, train: LabelledImages, cache: FeatureCache
) -> tuple[np.ndarray, np.ndarray]:
    """Each training image's TTA-averaged probabilities from a run of the same recipe that
    did not train on it (``CALIBRATION_FOLDS`` folds, in ``out/calibration/fold-<i>``)."""
    from dataclasses import replace

    folds = stratified_folds(train.labels, CALIBRATION_FOLDS, config.seed)
    probs = np.zeros((len(train), len(train.classes)), np.float32)
    cache_dir = config.cache_dir or (str(cache.root) if cache.root is not None else None)
    fold_config = replace(
        config, calibration="none", val_fraction=0.0, devices=1, num_nodes=1, cache_dir=cache_dir
    )
    for i, held in enumerate(folds):
        kept = np.setdiff1d(np.arange(len(train)), held)
        with global_seed(config.seed, "calibration-fold", i):
            run = _finetune(
                train, out / "calibration" / f"fold-{i}", fold_config, kept, held,
                False, True, False, False, (),
            )  # fmt: skip
        assert run.test_probs is not None  # test_index was given
        probs[held] = run.test_probs
    return probs, train.labels
