"""The linear probe: the head trained on frozen, cached backbone features (the ``linear``
strategy, and ``lp-ft``'s first stage), and evaluation from the same cache."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from augmentor.guards import DivergenceGuard
from augmentor.io import atomic_write_bytes
from augmentor.pipeline import Pipeline
from augmentor.seeding import global_seed, stream, torch_generator
from augmentor.trainer import is_global_zero
from transfer.classifier import Classifier, GroupSpec
from transfer.config import FinetuneConfig
from transfer.features import FeatureCache
from transfer.images import LabelledImages
from transfer.module import ClassifierModule, class_weights, sample_weights
from transfer.preprocess import PreprocessModule
from transfer.stages import device_name, fit_stage, stage_trainer

log = logging.getLogger(__name__)

__all__ = [
    "cached_probs",
    "evaluate_cached",
    "fit_linear_probe",
    "load_probe_head",
    "save_probe_head",
    "train_probe",
]


def train_probe(
    config: FinetuneConfig,
    out: Path,
    cache: FeatureCache,
    model: Classifier,
    preprocess: PreprocessModule,
    train: LabelledImages,
    val: LabelledImages | None,
    pipeline: Pipeline | None,
    synthetic: LabelledImages | None,
    progress: bool,
) -> None:
    """Train ``model.head`` on cached frozen features (the linear probe)."""
    device = device_name()
    views = config.feature_views
    pipe = pipeline if views > 1 else None
    f_train = cache.features(model.backbone, preprocess, train, views, pipe, device=device)
    f_val = (
        cache.features(model.backbone, preprocess, val, 1, device=device)[0]
        if val is not None
        else None
    )
    feats, labels = [f_train.reshape(-1, f_train.shape[-1])], [np.tile(train.labels, views)]
    if synthetic is not None and config.synthetic_mode == "extra" and config.synthetic_ratio > 0:
        f_syn = cache.features(model.backbone, preprocess, synthetic, 1, device=device)[0]
        n = min(len(synthetic), round(config.synthetic_ratio * len(train) * views))
        pick = stream(config.seed, "probe-synthetic").permutation(len(synthetic))[:n]
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
        class_weights=class_weights(y.numpy(), k) if config.balance == "loss" else None,
    )
    generator = torch_generator(config.seed, "probe-shuffle")
    if config.balance == "sampler":
        w = torch.from_numpy(sample_weights(y.numpy(), k))
        sampler: Any = torch.utils.data.WeightedRandomSampler(
            w.tolist(), len(w), generator=generator
        )
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
    trainer = stage_trainer(
        config,
        out,
        config.probe_epochs,
        "probe",
        [DivergenceGuard()],
        False,
        progress,
        validate=val is not None,
        single_device=True,  # a head on cached features: one device is plenty
    )
    fit_stage(trainer, module, loader, val_loader)
    if is_global_zero():
        save_probe_head(out, model)


PROBE_HEAD = "probe-head.safetensors"


def save_probe_head(out: Path, model: Classifier) -> None:
    """Keep the probed head beside the run: a resumed fine-tuning stage and the final
    probe-vs-fine-tuned check need it, and the probe need not run again."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    atomic_write_bytes(out / PROBE_HEAD, save(state))


def load_probe_head(out: Path, model: Classifier) -> bool:
    """Load the head saved by :func:`save_probe_head` into ``model``; False if there is none."""
    from safetensors.torch import load_file

    path = out / PROBE_HEAD
    if not path.is_file():
        return False
    model.head.load_state_dict(load_file(str(path)))
    return True


def cached_probs(
    cache: FeatureCache, model: Classifier, preprocess: PreprocessModule, data: LabelledImages
) -> np.ndarray:
    """The head's softmax on the cached features of ``data`` (frozen backbone)."""
    feats = cache.features(model.backbone, preprocess, data, 1, device=device_name())[0]
    with torch.inference_mode():
        return model.head.eval()(feats).float().softmax(1).numpy()


def evaluate_cached(
    cache: FeatureCache, model: Classifier, preprocess: PreprocessModule, data: LabelledImages
) -> dict[str, Any]:
    from transfer.evaluate import classification_metrics

    probs = cached_probs(cache, model, preprocess, data)
    return classification_metrics(data.labels, probs, data.classes, data.sources)


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decay: float = 1e-3,
    max_iter: int = 200,
) -> nn.Linear:
    """A multinomial logistic regression on (standardised) features, fitted full-batch with
    L-BFGS: the linear probe of a few hundred cached feature rows in well under a second, with
    no Trainer around it. Written by hand because it is a dozen lines and scikit-learn is not a
    dependency."""
    x = features.float()
    with global_seed(0, "init"):  # the init zeroed below: keep the caller's random state
        head = nn.Linear(x.shape[1], num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )
    y = labels.long()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(x), y) + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head.eval()
