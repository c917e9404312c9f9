"""The network that is fine-tuned: a backbone with a dropout + linear head, and its optimizer
parameter groups (the unit of gradual unfreezing and layer-wise learning rates)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from transfer.backbones import Backbone

__all__ = ["Classifier", "GroupSpec", "backbone_groups"]


class Classifier(nn.Module):
    """A backbone with a dropout + linear head. Frozen BatchNorm layers stay in eval mode.

    Example:
        >>> from transfer.backbones import create_backbone
        >>> bb = create_backbone("small_cnn", pretrained=False)
        >>> Classifier(bb, 3)(torch.zeros(2, 3, 28, 28)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        dropout: float = 0.2,
        bn_stats_frozen: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bn_stats_frozen = bn_stats_frozen
        # parameters treated as frozen although they require grad (gradual unfreezing under
        # several devices, where DDP must see every parameter from the start)
        self.frozen: set[int] = set()
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(backbone.num_features, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def train(self, mode: bool = True) -> Classifier:
        # A BatchNorm whose weights are frozen (or all of them, with bn_stats_frozen) must keep
        # using, and not update, its running statistics in train mode. Lightning's own
        # BaseFinetuning.freeze sets track_running_stats=False instead, which normalizes with
        # batch statistics in train mode: the features would change.
        super().train(mode)
        if mode:
            for m in self.backbone.modules():
                if not isinstance(m, _BatchNorm):
                    continue
                params = list(m.parameters(recurse=False))
                frozen = bool(params) and all(
                    not p.requires_grad or id(p) in self.frozen for p in params
                )
                if frozen or self.bn_stats_frozen:
                    m.eval()
        return self


@dataclass
class GroupSpec:
    """One optimizer parameter group: its learning rate and the epoch it starts training."""

    name: str
    params: list[nn.Parameter]
    lr: float
    start_epoch: int | None  # None: never trains


def backbone_groups(
    backbone: Backbone, strategy: str, lr: float, layer_decay: float, unfreeze_every: int
) -> list[GroupSpec]:
    params = dict(backbone.body.named_parameters())
    n = len(backbone.groups)
    out = []
    for j, names in enumerate(backbone.groups):
        depth = n - 1 - j  # 0 = the group next to the head
        if strategy == "linear":
            start = None
        elif strategy == "gradual":
            start = (depth + 1) * unfreeze_every
        else:
            start = 0
        out.append(
            GroupSpec(f"backbone.{j}", [params[k] for k in names], lr * layer_decay**depth, start)
        )
    return out
