"""Any torchvision classification model as a backbone (its last ``Linear`` becomes ``Identity``;
preprocessing from its weights' ``transforms()``)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from transfer.backbones.base import Backbone
from transfer.backbones.weights import load_body, load_state_dict_file, offline_error
from transfer.errors import BackboneError
from transfer.preprocess import Preprocessing

__all__ = ["torchvision_backbone"]


def torchvision_backbone(name: str, weights: str | Path | None, pretrained: bool) -> Backbone:
    import torchvision

    tv_name = name.removeprefix("torchvision/")
    try:
        default = torchvision.models.get_model_weights(tv_name).DEFAULT
    except (ValueError, KeyError):
        raise BackboneError(f"unknown torchvision model {tv_name!r}") from None
    source = "random"
    if weights is None and pretrained:
        try:
            model = torchvision.models.get_model(tv_name, weights=default)
        except Exception as e:  # download / cache failure
            raise offline_error(
                name, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            ) from None
        source = "torch cache or download"
    else:
        model = torchvision.models.get_model(tv_name, weights=None)
    num_features = _strip_last_linear(model)
    if weights is not None:
        load_body(model, load_state_dict_file(weights), repr(str(weights)))
        source = str(weights)
    t = default.transforms()
    pre = Preprocessing(
        int(t.crop_size[0]),
        int(t.resize_size[0]),
        tuple(float(v) for v in t.mean),  # type: ignore[arg-type]
        tuple(float(v) for v in t.std),  # type: ignore[arg-type]
        t.interpolation.value,
    )
    groups = [
        [f"{child}.{n}" for n, _ in module.named_parameters()]
        for child, module in model.named_children()
    ]
    return Backbone(name, model, num_features, pre, [g for g in groups if g], source)


def _strip_last_linear(model: nn.Module) -> int:
    """Replace the model's last ``nn.Linear`` by ``Identity``; return its input size."""
    last = None
    for full_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = full_name
    if last is None:
        raise BackboneError(f"{type(model).__name__} has no Linear classifier to replace")
    parent_name, _, attr = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    in_features = getattr(parent, attr).in_features
    setattr(parent, attr, nn.Identity())
    return int(in_features)
