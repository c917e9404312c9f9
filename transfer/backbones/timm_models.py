"""Any timm model as a backbone, and the timm helpers the Lite family shares: parameter groups
(timm's ``group_matcher``) and the preprocessing timm resolves for a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transfer.backbones.base import Backbone
from transfer.backbones.weights import load_body, load_state_dict_file, offline_error
from transfer.preprocess import Preprocessing

__all__ = ["timm_backbone", "timm_groups", "timm_preprocessing"]


def timm_groups(model: Any) -> list[list[str]]:
    from timm.models import group_parameters

    names = [n for n, _ in model.named_parameters()]
    try:
        grouped = group_parameters(model, model.group_matcher(coarse=True))
    except (AttributeError, NotImplementedError):
        grouped = {}
    groups = [list(v) for _, v in sorted(grouped.items())] if grouped else []
    covered = {n for g in groups for n in g}
    rest = [n for n in names if n not in covered]
    if rest:
        groups.append(rest)
    return [g for g in groups if g]


def timm_preprocessing(model: Any) -> Preprocessing:
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    size = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interp = cfg.get("interpolation", "bilinear")
    return Preprocessing(
        size,
        int(size / crop_pct),
        tuple(float(v) for v in cfg["mean"]),  # type: ignore[arg-type]
        tuple(float(v) for v in cfg["std"]),  # type: ignore[arg-type]
        interp if interp in ("bilinear", "bicubic", "nearest") else "bilinear",
    )


def timm_backbone(
    name: str, timm_name: str, weights: str | Path | None, pretrained: bool
) -> Backbone:
    import timm

    source = "random"
    if weights is not None:
        body: Any = timm.create_model(timm_name, pretrained=False, num_classes=0)
        load_body(body, load_state_dict_file(weights), repr(str(weights)))
        source = str(weights)
    elif pretrained:
        try:
            body = timm.create_model(timm_name, pretrained=True, num_classes=0)
        except Exception as e:  # network, hub and cache errors all mean "not available here"
            raise offline_error(
                name, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            ) from None
        source = "timm cache or download"
    else:
        body = timm.create_model(timm_name, pretrained=False, num_classes=0)
    return Backbone(
        name, body, body.num_features, timm_preprocessing(body), timm_groups(body), source
    )
