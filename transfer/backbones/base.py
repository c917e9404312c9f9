"""The backbone type and the backbone registry (the families register themselves into it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import nn

from augmentor.registry import Registry, UnknownNameError
from transfer.errors import BackboneError
from transfer.preprocess import Preprocessing

__all__ = [
    "BACKBONES",
    "Backbone",
    "UnknownBackboneError",
    "list_backbones",
    "register_backbone",
]


class UnknownBackboneError(UnknownNameError, BackboneError):
    """A backbone name that is neither registered nor a timm or torchvision model."""


class Backbone(nn.Module):
    """A feature extractor: ``forward(x) -> (batch, num_features)`` pooled features.

    Attributes:
        name: the name it was created from.
        num_features: the feature size.
        preprocessing: the input recipe the weights were trained with.
        groups: parameter names in groups from the input (stem) to the output, the unit of
            gradual unfreezing and of discriminative learning rates.
        source: where the weights came from ("random", a file path, "cache", "download").
    """

    def __init__(
        self,
        name: str,
        body: nn.Module,
        num_features: int,
        preprocessing: Preprocessing,
        groups: list[list[str]],
        source: str,
    ) -> None:
        super().__init__()
        self.name = name
        self.body = body
        self.num_features = num_features
        self.preprocessing = preprocessing
        self.groups = groups
        self.source = source
        self._fingerprint: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def fingerprint(self) -> str:
        """sha256 of the weights (names, shapes and bytes) as loaded; cached once computed."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.name.encode())
            for key, value in sorted(self.body.state_dict().items()):
                h.update(key.encode())
                h.update(str(tuple(value.shape)).encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


Factory = Callable[..., Backbone]  # (name, weights, pretrained) -> Backbone
BACKBONES: Registry[Factory] = Registry(
    "backbone", "transfer.list_backbones()", error=UnknownBackboneError
)


def register_backbone(name: str, description: str) -> Callable[[Factory], Factory]:
    """Register a factory ``(name, weights, pretrained) -> Backbone`` under ``name``."""
    return BACKBONES.register(name, description)


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names (``timm/<name>`` and ``torchvision/<name>`` work too)."""
    return BACKBONES.list(pattern)
