"""The pipeline: a seeded sequence of ops and its randomness contract.

Randomness is passed in, never global: a sample's augmentation is a pure function of
``(pipeline seed, epoch, sample index)``, through :func:`augmentor.seeding.rng_for`. That is
what makes DataLoader output independent of the worker count, runs reproducible, and resumed
jobs identical to uninterrupted ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import augmentor.ops  # noqa: F401  (registers the ops)
from augmentor.backends.cpu import Sample, run_steps
from augmentor.backends.plan import plan
from augmentor.ops.base import Node, SampleRng
from augmentor.registry import OPS
from augmentor.seeding import rng_for
from augmentor.serialization import FORMAT_VERSION, check_config, dump_config, read_config
from augmentor.structures import Parsed, final_tensor, parse_inputs
from augmentor.types import Canvas, Record

__all__ = ["Pipeline"]


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
        draws = _rng(rng)
        canvas = Canvas(int(size[0]), int(size[1]), int(channels))
        out: list[Record] = []
        for op in self.ops:
            op.sample(draws, canvas, out)  # type: ignore[arg-type]  # SampleRng quacks
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
            out = final_tensor(out) if self.returns_tensor else out
            return (out, records) if return_params else out
        parsed = parse_inputs(inputs)
        img = parsed.image_np
        records = self.sample_params(img.shape[:2], img.shape[2], index=index, epoch=epoch, rng=rng)
        out = parsed.rebuild(self._run(records, parsed), self.returns_tensor)
        return (out, records) if return_params else out

    def replay(self, inputs: Any, records: list[Record]) -> Any:
        """Apply recorded params again (from :meth:`__call__` with ``return_params=True`` or a
        manifest); gives the identical result."""
        parsed = parse_inputs(inputs)
        ends_final = bool(records) and getattr(OPS.get(records[-1]["op"]), "kind", "") == "final"
        return parsed.rebuild(self._run(records, parsed), ends_final)

    @staticmethod
    def _run(records: list[Record], parsed: Parsed) -> Sample:
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

        atomic_write_text(path, dump_config(self.get_config(), Path(path)))

    @classmethod
    def from_config(cls, cfg: Any) -> Pipeline:
        """The pipeline of a config (as :meth:`get_config` writes it)."""
        seed, ops = check_config(cfg)
        return cls(ops, seed=seed)

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        """Read a pipeline YAML/JSON file (errors name the file and what is wrong)."""
        return cls.from_config(read_config(path))

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {op!r}" for op in self.ops)
        return f"Pipeline(seed={self.seed}, ops=[\n{inner}\n])"

    def __len__(self) -> int:
        return len(self.ops)
