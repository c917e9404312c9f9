"""The baseline CNN, trained from scratch (the from-scratch arm of ``compare``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from transfer.backbones.base import Backbone, register_backbone
from transfer.backbones.weights import load_body, load_state_dict_file
from transfer.preprocess import Preprocessing

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """The course-notes CNN: Conv 32 5x5 -> max-pool -> Conv 64 5x5 -> max-pool -> flatten.

    The dense softmax layer is the classifier head the fine-tuning module adds on top.
    """

    def __init__(self, input_size: int = 28) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.num_features = 64 * (input_size // 4) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_backbone("small_cnn", "baseline: two conv layers, trained from scratch at 28x28")
def _small_cnn(name: str, weights: str | Path | None, pretrained: bool) -> Backbone:
    body = SmallCNN(28)
    source = "random"
    if weights is not None:
        load_body(body, load_state_dict_file(weights), repr(str(weights)))
        source = str(weights)
    pre = Preprocessing(28, 28, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")
    groups = [[n for n, _ in body.named_parameters()]]
    return Backbone(name, body, body.num_features, pre, groups, source)
