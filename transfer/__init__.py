"""transfer: pretrained backbones, fine-tuning and honest evaluation on small datasets.

Depends on ``augmentor``, never on ``cli``::

    from transfer import FinetuneConfig, finetune, Predictor
    result = finetune("data/train", "runs/mine", FinetuneConfig(strategy="lp-ft"))
    Predictor("runs/mine").predict(image, top_k=3)

The names below are the public surface (a test snapshots it). They are resolved on first use
(PEP 562), so ``import transfer`` or ``transfer.config`` costs no torch or Lightning import: the
CLI reads its defaults from :mod:`transfer.config` and stays instant. No submodule shares a
public name, so an imported submodule never shadows one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transfer.backbones import Backbone as Backbone
    from transfer.backbones import create_backbone as create_backbone
    from transfer.backbones import list_backbones as list_backbones
    from transfer.classifier import Classifier as Classifier
    from transfer.comparison import Comparison as Comparison
    from transfer.comparison import compare as compare
    from transfer.config import FinetuneConfig as FinetuneConfig
    from transfer.config import TuneConfig as TuneConfig
    from transfer.errors import BackboneError as BackboneError
    from transfer.errors import DataError as DataError
    from transfer.errors import RunError as RunError
    from transfer.evaluate import classification_metrics as classification_metrics
    from transfer.evaluate import mean_interval as mean_interval
    from transfer.export import Predictor as Predictor
    from transfer.export import load_run as load_run
    from transfer.features import FeatureCache as FeatureCache
    from transfer.finetuning import FinetuneResult as FinetuneResult
    from transfer.finetuning import finetune as finetune
    from transfer.images import LabelledImages as LabelledImages
    from transfer.images import load_folder as load_folder
    from transfer.preprocess import Preprocessing as Preprocessing
    from transfer.tuning import TuneResult as TuneResult
    from transfer.tuning import tune as tune

_EXPORTS = {
    "Backbone": "transfer.backbones",
    "create_backbone": "transfer.backbones",
    "list_backbones": "transfer.backbones",
    "Classifier": "transfer.classifier",
    "Comparison": "transfer.comparison",
    "compare": "transfer.comparison",
    "FinetuneConfig": "transfer.config",
    "TuneConfig": "transfer.config",
    "BackboneError": "transfer.errors",
    "DataError": "transfer.errors",
    "RunError": "transfer.errors",
    "classification_metrics": "transfer.evaluate",
    "mean_interval": "transfer.evaluate",
    "Predictor": "transfer.export",
    "load_run": "transfer.export",
    "FeatureCache": "transfer.features",
    "FinetuneResult": "transfer.finetuning",
    "finetune": "transfer.finetuning",
    "LabelledImages": "transfer.images",
    "load_folder": "transfer.images",
    "Preprocessing": "transfer.preprocess",
    "TuneResult": "transfer.tuning",
    "tune": "transfer.tuning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'transfer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
