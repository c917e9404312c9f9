"""transfer: pretrained backbones, fine-tuning and honest evaluation on small datasets.

Depends on ``augmentor``, never on ``cli``::

    from transfer import FinetuneConfig, finetune, Predictor
    result = finetune("data/train", "runs/mine", FinetuneConfig(strategy="lp-ft"))
    Predictor("runs/mine").predict(image, top_k=3)
"""

from __future__ import annotations

import importlib
from typing import Any

# The functions ``finetune`` and ``compare`` share their names with their modules; importing
# them here binds the package attributes to the functions once and for all (a lazy lookup would
# be shadowed by the submodule as soon as anything imports it).
from transfer.compare import compare as compare
from transfer.finetune import finetune as finetune

_EXPORTS = {
    "Backbone": "transfer.backbones",
    "BackboneError": "transfer.backbones",
    "Preprocessing": "transfer.backbones",
    "create_backbone": "transfer.backbones",
    "list_backbones": "transfer.backbones",
    "LabelledImages": "transfer.data",
    "DataError": "transfer.data",
    "load_folder": "transfer.data",
    "FeatureCache": "transfer.features",
    "Classifier": "transfer.finetune",
    "FinetuneConfig": "transfer.finetune",
    "Comparison": "transfer.compare",
    "mean_interval": "transfer.evaluate",
    "classification_metrics": "transfer.evaluate",
    "Predictor": "transfer.export",
    "load_run": "transfer.export",
    "RunError": "transfer.export",
}

__all__ = sorted([*_EXPORTS, "compare", "finetune"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'transfer' has no attribute {name!r}")
