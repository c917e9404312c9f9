"""What the three generators share: the saved-directory metadata (written and read), labels,
noise and pixel conversion, and the errors.

A saved generator is a directory written by diffusers' ``save_pretrained`` (``config.json`` +
``diffusion_pytorch_model.safetensors``: no pickle) plus ``generator.json``: the kind, class
names, image size and channels, a fingerprint of the training data and library versions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from augmentor._validation import check_class_names
from augmentor.generators.config import META_FILE, GeneratorError, size_levels
from augmentor.trainer import DivergenceError

__all__ = [
    "META_FILE",
    "VARY_METHODS",
    "VERSIONS",
    "DivergenceError",
    "GeneratorError",
    "check_labels",
    "evaluating",
    "no_images",
    "prepare_variation",
    "randn",
    "read_meta",
    "same_class_partners",
    "save_generator",
    "size_levels",
    "slerp",
    "to_uint8",
    "write_meta",
]

META_VERSION = 1
VERSIONS = ("smallaug", "torch", "diffusers", "lightning")  # recorded with a saved generator


def check_labels(
    n: int, labels: Sequence[int] | torch.Tensor | None, num_classes: int, device: torch.device
) -> torch.Tensor:
    """``labels`` as a long tensor of length ``n``; None cycles through the classes (balanced)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise GeneratorError(f"n must be a non-negative integer, got {n!r}")
    if labels is None:
        return torch.arange(n, device=device) % num_classes
    y = torch.as_tensor(labels, dtype=torch.long, device=device).flatten()
    if y.numel() == 1 and n != 1:
        y = y.expand(n)
    if y.numel() != n:
        raise GeneratorError(f"labels must have n={n} entries, got {y.numel()}")
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.numel():
        raise GeneratorError(
            f"label {int(bad[0])} is outside the trained classes 0..{num_classes - 1}"
        )
    return y


def randn(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Standard normal noise drawn on the generator's own device, then moved to ``device``: a
    CPU generator gives the same samples whatever device the model is on."""
    gdev = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gdev).to(device)


def no_images(config: Any) -> torch.Tensor:
    """The ``sample(0)`` result: an empty uint8 batch of the model's image shape."""
    c, s = config.channels, config.image_size
    return torch.zeros(0, c, s, s, dtype=torch.uint8)


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode inside the block, the previous mode after it."""
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 in [0, 255] (same shape), on the CPU."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


VARY_METHODS = ("posterior", "slerp", "sdedit")


def prepare_variation(
    model: Any,
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    n_per_image: int,
    strength: float,
    method: str,
    methods: Sequence[str] = ("posterior", "slerp"),
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Check a ``vary`` call and return ``(images in [-1, 1], labels, n_per_image)``."""
    from augmentor._validation import check_choice, check_int, check_number

    e = GeneratorError
    check_choice("vary", "method", method, methods, error=e)
    check_number("vary", "strength", strength, 0, 1, error=e)
    n = check_int("vary", "n_per_image", n_per_image, lo=1, error=e)
    cfg = model.config
    want = (cfg.channels, cfg.image_size, cfg.image_size)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise e(f"vary: images must be a uint8 tensor (N, C, H, W), got {_describe(images)}")
    if tuple(images.shape[1:]) != want:
        raise e(
            f"vary: images must be (N, {want[0]}, {want[1]}, {want[2]}) for this generator, got "
            f"{tuple(images.shape)}"
        )
    device = next(model.parameters()).device
    y = check_labels(images.shape[0], labels, cfg.num_classes, device)
    x = images.to(device).float() / 127.5 - 1
    return x, y, n


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def same_class_partners(
    labels: torch.Tensor,
    pool_labels: torch.Tensor,
    pool_latents: torch.Tensor,
    latents: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """For each row, the index in the pool of a random other item of its class (one whose
    latent differs from the row's own), or -1 when its class has none; drawn with
    ``generator``."""
    g_dev = generator.device if generator is not None else labels.device
    u = torch.rand(len(labels), generator=generator, device=g_dev).to(labels.device)
    out = torch.full((len(labels),), -1, dtype=torch.long, device=labels.device)
    for row in range(len(labels)):
        members = torch.nonzero(pool_labels == labels[row]).flatten()
        if len(members):
            same = (pool_latents[members] - latents[row]).abs().amax(1) < 1e-6
            members = members[~same]
        if len(members):
            out[row] = members[min(int(u[row] * len(members)), len(members) - 1)]
    return out


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from ``a`` towards ``b`` (rows), a share ``t`` of the way;
    linear where the two are nearly parallel."""
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    cos = ((a / na.clamp_min(1e-8)) * (b / nb.clamp_min(1e-8))).sum(1, keepdim=True)
    omega = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sph = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-8)
    return torch.where(so < 1e-4, lin, sph)


def write_meta(directory: str | Path, meta: dict[str, Any]) -> None:
    from augmentor.io import atomic_write_text

    payload = {"format_version": META_VERSION, **meta}
    atomic_write_text(Path(directory) / META_FILE, json.dumps(payload, indent=2))


def read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    if not Path(directory).is_dir():
        raise GeneratorError(f"generator directory {str(directory)!r} does not exist")
    if not path.is_file():
        raise GeneratorError(f"{str(directory)!r} is not a saved generator: {META_FILE} is missing")
    from augmentor.io import read_json

    meta = read_json(path, GeneratorError)
    if not isinstance(meta, dict):
        raise GeneratorError(f"{str(path)!r} must hold a JSON object, got {type(meta).__name__}")
    if meta.get("format_version") != META_VERSION:
        raise GeneratorError(
            f"{str(path)!r}: format_version {meta.get('format_version')!r} is not {META_VERSION}"
        )
    check_class_names(repr(str(path)), "class_names", meta.get("class_names"), error=GeneratorError)
    for key in ("image_size", "channels"):
        if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), int):
            raise GeneratorError(f"{str(path)!r}: {key} must be an integer, got {meta.get(key)!r}")
    return meta


def save_generator(model: Any, directory: Path, meta: dict[str, Any]) -> None:
    """Write a generator directory atomically; refuses non-finite weights."""
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise DivergenceError(f"refusing to save a generator with non-finite weights ({name})")
    directory = Path(directory)
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    write_meta(tmp, meta)
    if directory.exists():
        old = directory.with_name(f".old-{directory.name}")
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(directory)
