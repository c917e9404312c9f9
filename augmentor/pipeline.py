"""The pipeline: a seeded sequence of ops, its randomness contract, and (de)serialisation.

Randomness is passed in, never global: a sample's augmentation is a pure function of
``(pipeline seed, epoch, sample index)``, through ``numpy.random.default_rng([seed, epoch,
index])``. That is what makes DataLoader output independent of the worker count, runs
reproducible, and resumed jobs identical to uninterrupted ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import augmentor.ops  # noqa: F401  (registers the ops)
from augmentor.backends.cpu import Sample, run_steps
from augmentor.backends.plan import plan
from augmentor.convert import is_image_like, to_hwc
from augmentor.ops.base import Canvas, Node, Record, SampleRng
from augmentor.registry import OPS

FORMAT_VERSION = 1


def rng_for(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` at ``epoch`` for a pipeline seeded with ``seed``."""
    for name, v in (("seed", seed), ("epoch", epoch), ("index", index)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def _rng(gen: np.random.Generator) -> SampleRng:
    return gen if isinstance(gen, SampleRng) else SampleRng(gen)


class Pipeline:
    """A seeded sequence of ops, callable on one image (or an image with its targets).

    Args:
        ops: the ops, applied in order.
        seed: the pipeline seed.

    Calling ``pipeline(x, index=i, epoch=e)`` is deterministic in ``(seed, e, i)``. Without
    ``index``, an internal counter numbers the calls (fine in one process; use
    :class:`augmentor.AugmentedDataset` for DataLoaders with workers).

    Inputs follow torchvision v2: a PIL image, an HxW(xC) numpy array or a (C)xHxW tensor, or a
    tuple/list/dict holding one image with ``tv_tensors.Mask``, ``BoundingBoxes`` and
    ``KeyPoints`` (or, in a dict, numpy arrays under ``mask``, ``boxes`` (XYXY) and
    ``keypoints`` (XY)). Outputs have the same structure and types.

    Example:
        >>> import numpy as np
        >>> from augmentor import Pipeline, HorizontalFlip, Rotate
        >>> pipe = Pipeline([HorizontalFlip(p=0.5), Rotate(10)], seed=0)
        >>> img = np.zeros((32, 48, 3), np.uint8)
        >>> out = pipe(img, index=3)
        >>> out.shape
        (32, 48, 3)
        >>> bool((pipe(img, index=3) == out).all())
        True
    """

    def __init__(self, ops: Sequence[Node], seed: int = 0) -> None:
        if isinstance(ops, Node):
            ops = [ops]
        if not isinstance(ops, Sequence) or isinstance(ops, str):
            raise ValueError(f"ops must be a list of ops, got {ops!r}")
        for i, op in enumerate(ops):
            if not isinstance(op, Node):
                raise ValueError(f"ops[{i}] must be an op, got {type(op).__name__}")
        final = [i for i, op in enumerate(ops) if getattr(op, "kind", None) == "final"]
        if final and final != [len(ops) - 1]:
            raise ValueError("normalize must be the last op of a pipeline")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.ops = list(ops)
        self.seed = int(seed)
        self._calls = 0

    # -- sampling ---------------------------------------------------------------------------
    def sample_params(
        self,
        size: tuple[int, int],
        channels: int = 3,
        *,
        index: int | None = None,
        epoch: int = 0,
        rng: np.random.Generator | None = None,
    ) -> list[Record]:
        """The records (plain data) for one image of ``size`` = (height, width)."""
        if rng is None:
            if index is None:
                index = self._calls
                self._calls += 1
            rng = rng_for(self.seed, epoch, index)
        rng = _rng(rng)
        canvas = Canvas(int(size[0]), int(size[1]), int(channels))
        out: list[Record] = []
        for op in self.ops:
            op.sample(rng, canvas, out)
        return out

    @property
    def returns_tensor(self) -> bool:
        return bool(self.ops) and getattr(self.ops[-1], "kind", None) == "final"

    # -- applying ---------------------------------------------------------------------------
    def __call__(
        self,
        inputs: Any,
        *,
        index: int | None = None,
        epoch: int = 0,
        rng: np.random.Generator | None = None,
        return_params: bool = False,
    ) -> Any:
        if (
            isinstance(inputs, np.ndarray)
            and inputs.dtype == np.uint8
            and inputs.ndim == 3
            and inputs.shape[2] in (1, 3)
            and inputs.flags.c_contiguous
        ):
            # fast path: the common HWC uint8 image needs no conversion either way
            shape = inputs.shape
            records = self.sample_params(shape[:2], shape[2], index=index, epoch=epoch, rng=rng)
            out = run_steps(plan(records, shape[:2]), Sample(inputs)).image
            out = _final_tensor(out) if self.returns_tensor else out
            return (out, records) if return_params else out
        parsed = _parse_inputs(inputs)
        img = parsed.image_np
        records = self.sample_params(img.shape[:2], img.shape[2], index=index, epoch=epoch, rng=rng)
        out = parsed.rebuild(self._run(records, parsed), self.returns_tensor)
        return (out, records) if return_params else out

    def replay(self, inputs: Any, records: list[Record]) -> Any:
        """Apply recorded params again (from :meth:`__call__` with ``return_params=True`` or a
        manifest); gives the identical result."""
        parsed = _parse_inputs(inputs)
        ends_final = bool(records) and getattr(OPS.get(records[-1]["op"]), "kind", "") == "final"
        return parsed.rebuild(self._run(records, parsed), ends_final)

    @staticmethod
    def _run(records: list[Record], parsed: _Parsed) -> Sample:
        sample = Sample(parsed.image_np, parsed.mask_np, parsed.boxes_np, parsed.kps_np)
        return run_steps(plan(records, parsed.image_np.shape[:2]), sample)

    def batch(
        self,
        images: Any,
        indices: Sequence[int] | None = None,
        epoch: int = 0,
        records: list[list[Record]] | None = None,
    ) -> Any:
        """Augment an ``N x C x H x W`` tensor on its device (GPU when it is there), different
        params per image: image ``k`` gets the params of sample ``indices[k]``, identical to
        what the per-image path samples for that index."""
        from augmentor.backends.torch_batch import apply_records_batch

        if records is None:
            n = images.shape[0]
            if indices is None:
                indices = list(range(self._calls, self._calls + n))
                self._calls += n
            if len(indices) != n:
                raise ValueError(f"indices has {len(indices)} entries for {n} images")
            size = tuple(images.shape[-2:])
            records = [
                self.sample_params(size, images.shape[1], index=int(i), epoch=epoch)
                for i in indices
            ]
        return apply_records_batch(records, images)

    # -- config -----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "seed": self.seed,
            "ops": [op.get_config() for op in self.ops],
        }

    def save(self, path: str | Path) -> None:
        """Write the pipeline as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
        from augmentor.io import atomic_write_text

        path = Path(path)
        cfg = self.get_config()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(cfg, sort_keys=False)
        else:
            text = json.dumps(cfg, indent=2) + "\n"
        atomic_write_text(path, text)

    @classmethod
    def from_config(cls, cfg: Any) -> Pipeline:
        if not isinstance(cfg, dict):
            raise ValueError(f"pipeline config must be a mapping, got {type(cfg).__name__}")
        unknown = set(cfg) - {"version", "seed", "ops"}
        if unknown:
            raise ValueError(
                f"pipeline config: unknown key(s) {sorted(unknown)} (expected version, seed, ops)"
            )
        version = cfg.get("version")
        if version != FORMAT_VERSION:
            raise ValueError(f"pipeline config: version must be {FORMAT_VERSION}, got {version!r}")
        ops = cfg.get("ops")
        if not isinstance(ops, list):
            raise ValueError(f"pipeline config: ops must be a list, got {ops!r}")
        return cls([build_op(c, f"ops[{i}]") for i, c in enumerate(ops)], seed=cfg.get("seed", 0))

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"cannot read pipeline file {str(path)!r}: {e.strerror}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                cfg = yaml.safe_load(text)
            else:
                cfg = json.loads(text)
        except Exception as e:  # yaml and json raise different types
            raise ValueError(
                f"pipeline file {str(path)!r} is not valid "
                f"{'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                f"{e}"
            ) from None
        return cls.from_config(cfg)

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {op!r}" for op in self.ops)
        return f"Pipeline(seed={self.seed}, ops=[\n{inner}\n])"

    def __len__(self) -> int:
        return len(self.ops)


def build_op(cfg: Any, where: str = "op") -> Node:
    """Create an op from its config ``{"op": name, **args}`` (children under ``ops``)."""
    import inspect

    if not isinstance(cfg, dict) or "op" not in cfg:
        raise ValueError(f"{where}: an op config must be a mapping with an 'op' key, got {cfg!r}")
    name = cfg["op"]
    if name not in OPS:
        raise ValueError(f"{where}: {OPS.unknown_message(name)}")
    cls = OPS.get(name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    args = {k: v for k, v in cfg.items() if k != "op"}
    unknown = [k for k in args if k not in allowed]
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(k, allowed, n=1) for k in unknown]
        hint = "".join(f"; did you mean {h[0]!r} for {k!r}?" for k, h in zip(unknown, hints) if h)
        raise ValueError(
            f"{where} ({name}): unknown argument(s) {unknown}{hint} (allowed: {allowed})"
        )
    if "ops" in args:
        if not isinstance(args["ops"], list):
            raise ValueError(f"{where} ({name}): ops must be a list, got {args['ops']!r}")
        args["ops"] = [build_op(c, f"{where}.ops[{i}]") for i, c in enumerate(args["ops"])]
    try:
        return cls(**args)
    except TypeError as e:
        raise ValueError(f"{where} ({name}): {e}") from None
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


# --------------------------------------------------------------------------------------------
# Input structures
# --------------------------------------------------------------------------------------------


class _Parsed:
    def __init__(self) -> None:
        self.image_np: np.ndarray
        self.mask_np: np.ndarray | None = None
        self.boxes_np: np.ndarray | None = None
        self.kps_np: np.ndarray | None = None
        self.rebuild_fn: Any = None

    def rebuild(self, sample: Sample, as_tensor: bool) -> Any:
        return self.rebuild_fn(sample, as_tensor)


def _tv_kind(x: Any) -> str | None:
    import sys

    tv = sys.modules.get("torchvision.tv_tensors")
    if tv is None:
        return None
    for kind, cls_name in (
        ("image", "Image"),
        ("mask", "Mask"),
        ("boxes", "BoundingBoxes"),
        ("keypoints", "KeyPoints"),
    ):
        cls = getattr(tv, cls_name, None)
        if cls is not None and isinstance(x, cls):
            return kind
    return None


def _parse_inputs(inputs: Any) -> _Parsed:
    parsed = _Parsed()
    if is_image_like(inputs):
        img, back = to_hwc(inputs)
        parsed.image_np = img

        def rebuild_single(sample: Sample, as_tensor: bool) -> Any:
            return _final_tensor(sample.image) if as_tensor else back(sample.image)

        parsed.rebuild_fn = rebuild_single
        return parsed

    if not isinstance(inputs, (tuple, list, dict)):
        to_hwc(inputs)  # raises the TypeError that names what was passed

    from torch.utils._pytree import tree_flatten, tree_unflatten

    flat, spec = tree_flatten(inputs)
    keys = _dict_keys(inputs)
    roles: dict[str, int] = {}
    for i, leaf in enumerate(flat):
        kind = _tv_kind(leaf)
        if kind is None and keys is not None and isinstance(leaf, np.ndarray):
            kind = {
                "mask": "mask",
                "masks": "mask",
                "boxes": "boxes",
                "bboxes": "boxes",
                "keypoints": "keypoints",
            }.get(keys[i])
        if kind is None and is_image_like(leaf) and (keys is None or keys[i] == "image"):
            kind = "image"
        if kind is not None:
            if kind in roles:
                if kind == "image":
                    continue  # like torchvision: only the first plain image is transformed
                raise ValueError(f"inputs hold more than one {kind}; pass one per call")
            roles[kind] = i
    if "image" not in roles:
        raise ValueError(
            "inputs hold no image (a PIL image, numpy array, tensor or tv_tensors.Image)"
        )
    img, back = to_hwc(flat[roles["image"]])
    parsed.image_np = img
    h, w = img.shape[:2]
    extra: dict[str, Any] = {}
    if "mask" in roles:
        m = flat[roles["mask"]]
        arr = m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
        chw = hasattr(m, "detach") and arr.ndim == 3
        extra["mask_chw"] = chw
        if chw:
            arr = arr.transpose(1, 2, 0)
        if arr.shape[:2] != (h, w):
            raise ValueError(f"mask has size {arr.shape[:2]} but the image is {(h, w)}")
        parsed.mask_np = np.ascontiguousarray(arr)
    if "boxes" in roles:
        b = flat[roles["boxes"]]
        if _tv_kind(b) == "boxes":
            from torchvision.transforms.v2 import functional as TF

            xyxy = TF.convert_bounding_box_format(b, new_format="XYXY")
            parsed.boxes_np = xyxy.detach().cpu().numpy().astype(np.float64).reshape(-1, 4)
        else:
            parsed.boxes_np = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if "keypoints" in roles:
        k = flat[roles["keypoints"]]
        arr = k.detach().cpu().numpy() if hasattr(k, "detach") else np.asarray(k)
        extra["kps_shape"] = arr.shape
        parsed.kps_np = arr.astype(np.float64).reshape(-1, 2)

    def rebuild_struct(sample: Sample, as_tensor: bool) -> Any:
        out = list(flat)
        oh, ow = sample.image.shape[1:] if as_tensor else sample.image.shape[:2]
        out[roles["image"]] = _final_tensor(sample.image) if as_tensor else back(sample.image)
        if "mask" in roles:
            orig = flat[roles["mask"]]
            m = sample.mask
            if hasattr(orig, "detach"):
                import torch

                t = torch.from_numpy(
                    np.ascontiguousarray(m.transpose(2, 0, 1) if extra["mask_chw"] else m)
                ).to(orig.device)
                from torchvision import tv_tensors

                out[roles["mask"]] = tv_tensors.Mask(t) if _tv_kind(orig) else t
            else:
                out[roles["mask"]] = m
        if "boxes" in roles:
            orig = flat[roles["boxes"]]
            if _tv_kind(orig) == "boxes":
                import torch
                from torchvision import tv_tensors
                from torchvision.transforms.v2 import functional as TF

                bb = tv_tensors.BoundingBoxes(
                    torch.as_tensor(sample.boxes, dtype=orig.dtype),
                    format="XYXY",
                    canvas_size=(oh, ow),
                    device=orig.device,
                )
                out[roles["boxes"]] = TF.convert_bounding_box_format(bb, new_format=orig.format)
            else:
                out[roles["boxes"]] = sample.boxes.astype(np.asarray(orig).dtype)
        if "keypoints" in roles:
            orig = flat[roles["keypoints"]]
            kp = sample.keypoints.reshape(extra["kps_shape"])
            if _tv_kind(orig) == "keypoints":
                import torch
                from torchvision import tv_tensors

                out[roles["keypoints"]] = tv_tensors.KeyPoints(
                    torch.as_tensor(kp, dtype=orig.dtype), canvas_size=(oh, ow), device=orig.device
                )
            else:
                out[roles["keypoints"]] = kp.astype(np.asarray(orig).dtype)
        return tree_unflatten(out, spec)

    parsed.rebuild_fn = rebuild_struct
    return parsed


def _dict_keys(inputs: Any) -> list[str] | None:
    if isinstance(inputs, dict) and all(
        not isinstance(v, (dict, list, tuple)) for v in inputs.values()
    ):
        from torch.utils._pytree import tree_flatten

        # pytree flattens a flat dict in its key order; keep the names of the leaves
        flat, _ = tree_flatten(inputs)
        if len(flat) == len(inputs):
            return [str(k) for k in inputs]
    return None


def _final_tensor(chw: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(chw)
