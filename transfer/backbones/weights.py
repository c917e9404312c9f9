"""Weight files: read a state_dict without running code, and load it strictly into a body."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transfer.errors import BackboneError

__all__ = ["load_body", "load_state_dict_file", "offline_error"]


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict without running code: safetensors, or ``torch.load(weights_only=True)``.

    Common wrappers (``{"state_dict": ...}``, ``{"model": ...}``, Lightning checkpoints) and a
    ``module.`` prefix from DataParallel are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"weights: no such file {str(path)!r}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any decoder error: the file is not what we can read
        raise BackboneError(
            f"weights: {str(path)!r} is not a state_dict readable with safetensors or "
            f"torch.load(weights_only=True): {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from None
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise BackboneError(
            f"weights: {str(path)!r} does not hold a state_dict (a dict of name -> tensor); "
            f"found {type(obj).__name__}"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


_CLASSIFIER_KEYS = re.compile(r"^(classifier|fc|head|heads|_fc)(\.|$)")


def load_body(body: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load every feature-extractor weight strictly; classifier weights are ignored.

    Written by hand because ``load_state_dict(strict=True)`` raises a wall of text from inside
    torch; this names the first missing / unexpected / mis-shaped keys and the file.
    """
    expected = body.state_dict()
    given = {k: v for k, v in state.items() if not _CLASSIFIER_KEYS.match(k)}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: file {tuple(given[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in given and tuple(given[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} with other shapes (e.g. {'; '.join(shapes[:2])})")
    if problems:
        raise BackboneError(
            f"weights from {origin} do not match the backbone: " + ", ".join(problems)
        )
    body.load_state_dict(given, strict=True)


def offline_error(name: str, detail: str) -> BackboneError:
    return BackboneError(
        f"no pretrained weights for {name!r} could be found offline ({detail}). Put a state_dict "
        "file somewhere and pass --weights PATH (weights=PATH), or place the weights in the "
        "torch cache (~/.cache/torch/hub/checkpoints) or the Hugging Face cache "
        "(~/.cache/huggingface/hub) by running once online, or ask for random init with "
        "--no-pretrained"
    )
