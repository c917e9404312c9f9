"""Saving, exporting and loading a fine-tuned classifier; nothing here unpickles.

A run directory holds:

* ``model.safetensors`` + ``config.json`` + ``labels.json`` + ``preprocess.json``: the weights and
  what rebuilds the network with timm/torchvision (:func:`load_run`);
* ``export/model.torchscript.pt`` and ``export/model.onnx``: the classifier *with its
  preprocessing inside*. Input: uint8 images ``(N, C, H, W)`` of any height and width, with C
  in {1, 3, 4} for TorchScript and C = 3 (RGB) for ONNX (torch.export fixes the channel
  branch); output: class probabilities ``(N, K)``, averaged over the run's test-time views
  and calibrated by its temperature (``calibration.json``, :mod:`transfer.calibration`).
  Neither needs this package to run (:class:`Predictor` uses only ``torch.jit.load``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augmentor._validation import check_class_names, check_number
from augmentor.io import atomic_write_bytes, atomic_write_text, read_json
from augmentor.seeding import global_seed
from transfer.backbones import create_backbone
from transfer.calibration import Served
from transfer.errors import RunError
from transfer.preprocess import Preprocessing, PreprocessModule, to_chw_uint8

log = logging.getLogger(__name__)

__all__ = ["Predictor", "classifier_filter", "export_model", "load_run", "save_run"]

TORCHSCRIPT = "export/model.torchscript.pt"
ONNX = "export/model.onnx"


class Exported(nn.Module):
    """Preprocessing + classifier + TTA and temperature (:class:`Served`): the exported module."""

    def __init__(
        self,
        classifier: nn.Module,
        preprocessing: Preprocessing,
        tta: str = "none",
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.preprocess = PreprocessModule(preprocessing)
        self.served = Served(classifier, preprocessing.input_size, tta, temperature)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.served(self.preprocess(images))


def save_run(
    out: str | Path,
    model: nn.Module,
    classes: list[str],
    preprocessing: Preprocessing,
    config: Any,
) -> None:
    """Write the weights (safetensors), config, labels and preprocessing of a run."""
    from safetensors.torch import save

    out = Path(out)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / "model.safetensors", save(state))
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    atomic_write_text(out / "config.json", json.dumps(cfg, indent=2, sort_keys=True))
    atomic_write_text(out / "labels.json", json.dumps(list(classes), indent=2))
    atomic_write_text(out / "preprocess.json", json.dumps(preprocessing.to_dict(), indent=2))


def export_model(
    out: str | Path,
    model: nn.Module,
    preprocessing: Preprocessing,
    tta: str = "none",
    temperature: float = 1.0,
) -> list[Path]:
    """Write the TorchScript and ONNX models (preprocessing, TTA views and temperature inside)
    under ``out/export``."""
    import io
    import warnings

    out = Path(out)
    module = Exported(model.cpu().eval(), preprocessing, tta, temperature).eval()
    written = []
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        torch.jit.save(torch.jit.script(module), buf)
    atomic_write_bytes(out / TORCHSCRIPT, buf.getvalue())
    written.append(out / TORCHSCRIPT)
    try:
        written.append(_export_onnx(module, out / ONNX, preprocessing.input_size))
    except Exception as e:  # a model torch.export cannot trace still has its TorchScript file
        log.warning(
            "ONNX export failed (%s: %s); the TorchScript export is there",
            type(e).__name__,
            str(e).splitlines()[0][:200],
        )
    return written


def _export_onnx(module: nn.Module, path: Path, size: int) -> Path:
    import contextlib
    import io
    import tempfile

    from torch.export import Dim

    example = torch.zeros(2, 3, size + 5, size + 3, dtype=torch.uint8)
    shapes = (
        {
            0: Dim("batch", max=4096),
            2: Dim("height", min=8, max=8192),
            3: Dim("width", min=8, max=8192),
        },
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        tmp_path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (example,),
            str(tmp_path),
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=["images"],
            output_names=["probabilities"],
            external_data=False,
        )
        atomic_write_bytes(path, tmp_path.read_bytes())
    return path


def _read_json(run: Path, name: str) -> Any:
    path = run / name
    if not path.is_file():
        raise RunError(f"{str(run)!r} is not a complete run directory: {name} is missing")
    return read_json(path, RunError)


def load_run(run: str | Path) -> tuple[nn.Module, list[str], Preprocessing, dict[str, Any]]:
    """Rebuild ``(classifier, classes, preprocessing, config)`` from a run directory.

    The network is built from its config (random init) and the weights come from
    ``model.safetensors``: loading never runs code from the file.
    """
    from safetensors.torch import load_file

    from transfer.classifier import Classifier

    run = Path(run)
    if not run.is_dir():
        raise RunError(f"run directory {str(run)!r} does not exist")
    cfg = _read_json(run, "config.json")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("backbone"), str):
        raise RunError(f"{str(run / 'config.json')!r} must be an object with a backbone name")
    dropout = check_number(
        str(run / "config.json"),
        "dropout",
        cfg.get("dropout", 0.0),
        0.0,
        1.0,
        hi_open=True,
        error=RunError,
    )
    classes = read_labels(run)
    pre = Preprocessing.from_dict(_read_json(run, "preprocess.json"), str(run / "preprocess.json"))
    weights = run / "model.safetensors"
    if not weights.is_file():
        raise RunError(
            f"{str(run)!r} is not a complete run directory: model.safetensors is missing"
        )
    with global_seed(0, "init"):  # random weights, replaced below: keep the caller's state
        backbone = create_backbone(cfg["backbone"], pretrained=False)
        model = Classifier(backbone, len(classes), dropout)
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for a broken header
        raise RunError(f"{str(weights)!r} is not a readable safetensors file ({e})") from None
    expected = model.state_dict()
    bad = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if bad or len(state) != len(expected):
        raise RunError(
            f"{str(weights)!r} does not match its config (backbone {cfg['backbone']!r}, "
            f"{len(classes)} classes): {len(bad)} keys missing or mis-shaped, e.g. {bad[:3]}"
        )
    model.load_state_dict(state)
    return model.eval(), list(classes), pre, cfg


def read_labels(run: Path) -> list[str]:
    """The class names of a run (``labels.json``): a non-empty list of distinct names."""
    labels = _read_json(run, "labels.json")
    return check_class_names(None, repr(str(run / "labels.json")), labels, error=RunError)


class Predictor:
    """Class probabilities for images of any size and mode, from a run's TorchScript export.

    Uses ``torch.jit.load`` and ``labels.json`` only: no code of this package runs the model.

    Example (after a fine-tuning run)::

        pred = Predictor("runs/fmnist")
        pred.predict(image, top_k=3)   # [("sneaker", 0.93), ...]
    """

    def __init__(self, run: str | Path, device: str = "cpu") -> None:
        run = Path(run)
        path = run / TORCHSCRIPT
        if not path.is_file():
            raise RunError(f"{str(run)!r} has no {TORCHSCRIPT}: was it fine-tuned with export on?")
        self.classes: list[str] = read_labels(run)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            try:
                self.model = torch.jit.load(str(path), map_location=device).eval()
            except Exception as e:  # a corrupt, truncated or foreign archive
                first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
                raise RunError(
                    f"{str(path)!r} is not a TorchScript model this run wrote "
                    f"({type(e).__name__}: {first})"
                ) from None
        self.device = device

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """``(K,)`` probabilities of one HWC (or HW) uint8 image."""
        with torch.inference_mode():
            x = to_chw_uint8(np.ascontiguousarray(image))[None].to(self.device)
            p = self.model(x)[0].cpu().numpy()
        if p.shape != (len(self.classes),):
            raise RunError(
                f"the model gives {p.shape[-1] if p.ndim else 0} probabilities but labels.json "
                f"names {len(self.classes)} classes"
            )
        return p

    def predict(self, image: np.ndarray, top_k: int = 1) -> list[tuple[str, float]]:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        p = self.probabilities(image)
        order = np.argsort(-p)[: min(top_k, len(p))]
        return [(self.classes[i], float(p[i])) for i in order]


def classifier_filter(
    run: str | Path, low: float, high: float, class_names: list[str]
) -> tuple[Any, str]:
    """A sample filter from a fine-tuned run: accept a sample when the run's classifier puts it
    in its conditioned class with a probability in ``[low, high]``.

    Returns ``(accept, description)`` where ``accept(uint8 images, labels) -> bool mask`` and
    labels index ``class_names`` (a generator's classes, which the run must know).
    """
    if not 0 <= low < high <= 1:
        raise ValueError(f"the confidence band must have 0 <= low < high <= 1, got {low}:{high}")
    predictor = Predictor(run)
    missing = [c for c in class_names if c not in predictor.classes]
    if missing:
        raise RunError(f"the classifier in {str(run)!r} does not know the classes {missing}")
    to_run = torch.tensor([predictor.classes.index(c) for c in class_names])

    def accept(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            probs = predictor.model(images)
        idx = to_run[labels]
        p = probs[torch.arange(len(idx)), idx]
        return (probs.argmax(1) == idx) & (p >= low) & (p <= high)

    return accept, f"classifier {run}: predicted class = label, probability in [{low}, {high}]"
