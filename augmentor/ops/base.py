"""Base classes of the op graph: sampling of plain-data parameters, apart from moving pixels.

Every random op follows torchvision v2's split (``make_params`` then ``transform``): a node samples
plain parameters from a ``numpy.random.Generator`` that is passed in (never global state) and
appends *records* ``{"op": name, "params": {...}}`` to a list. The records are all that is needed
to move the pixels: the backends (``augmentor.backends``) replay them on an image, its mask, boxes
and keypoints, per image on CPU or batched on a torch device. Records are JSON-serialisable, so
they can be logged in a manifest and replayed exactly.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

Record = dict[str, Any]
Size = tuple[int, int]  # (height, width)


@dataclass
class Canvas:
    """What a sampler may know about the image at a point of the pipeline: its size and channels."""

    height: int
    width: int
    channels: int = 3

    @property
    def size(self) -> Size:
        return (self.height, self.width)


# --------------------------------------------------------------------------------------------
# Validation at the boundary: messages name the argument, the bound and the value.
# --------------------------------------------------------------------------------------------


def check_prob(op: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{op}: p must be a number in [0, 1], got {p!r}")
    return float(p)


def check_number(
    op: str,
    arg: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    integer: bool = False,
) -> float:
    kind = "an integer" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not float(value).is_integer())
        or not math.isfinite(float(value))
    ):
        raise ValueError(f"{op}: {arg} must be {kind}, got {value!r}")
    if lo is not None and value < lo:
        raise ValueError(f"{op}: {arg} must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{op}: {arg} must be <= {hi}, got {value!r}")
    return int(value) if integer else float(value)


def check_range(
    op: str,
    arg: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    center: float | None = None,
    integer: bool = False,
) -> tuple[float, float]:
    """A (min, max) range. A single number ``v`` means ``(center - v, center + v)`` when a center
    is given (torchvision's ColorJitter convention), else ``(-v, v)``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = check_number(op, arg, value, lo=0.0, integer=integer)
        c = 0.0 if center is None else center
        low, high = c - v, c + v
        if lo is not None:
            low = max(low, lo)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        low = check_number(op, f"{arg}[0]", value[0], integer=integer)
        high = check_number(op, f"{arg}[1]", value[1], integer=integer)
        if low > high:
            raise ValueError(f"{op}: {arg} must be (min, max) with min <= max, got {list(value)!r}")
    else:
        raise ValueError(f"{op}: {arg} must be a number or a (min, max) pair, got {value!r}")
    if lo is not None and low < lo:
        raise ValueError(f"{op}: {arg} must be >= {lo}, got {value!r}")
    if hi is not None and high > hi:
        raise ValueError(f"{op}: {arg} must be <= {hi}, got {value!r}")
    if integer:
        return (int(low), int(high))
    return (float(low), float(high))


def check_size(op: str, arg: str, value: Any, *, allow_none: bool = False) -> Size | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = int(check_number(op, arg, value, lo=1, integer=True))
        return (v, v)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        h = int(check_number(op, f"{arg}[0]", value[0], lo=1, integer=True))
        w = int(check_number(op, f"{arg}[1]", value[1], lo=1, integer=True))
        return (h, w)
    raise ValueError(f"{op}: {arg} must be an int or (height, width), got {value!r}")


def check_choice(op: str, arg: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{op}: {arg} must be one of {list(choices)}, got {value!r}")
    return str(value)


def check_fill(op: str, value: Any) -> float | list[float]:
    """A fill colour as a fraction of the maximum value (0 = black, 1 = white), or 3 of them."""
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(values) in (1, 3) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in values
    ):
        return [float(v) for v in values] if len(values) == 3 else float(values[0])
    raise ValueError(
        f"{op}: fill must be a fraction in [0, 1] of the maximum value, or 3 of them (R, G, B), "
        f"got {value!r}"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


# --------------------------------------------------------------------------------------------
# Random draws
# --------------------------------------------------------------------------------------------


class SampleRng:
    """A ``numpy.random.Generator`` whose scalar draws come from one bulk call.

    Sampling one image's params takes a dozen scalar draws; each numpy scalar call costs a few
    microseconds, a third of the per-image budget. This draws 32 uniforms at a time and serves
    them as Python floats; array-shaped and other draws go to the generator itself. Still a pure
    function of the generator's seed.
    """

    __slots__ = ("_buf", "_i", "gen")

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._buf: list[float] = []
        self._i = 0

    def random(self, size: Any = None) -> Any:
        if size is not None:
            return self.gen.random(size)
        if self._i == len(self._buf):
            self._buf = self.gen.random(32).tolist()
            self._i = 0
        u = self._buf[self._i]
        self._i += 1
        return u

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        if size is not None:
            return self.gen.uniform(low, high, size)
        return low + (high - low) * self.random()

    def integers(self, low: int, high: int | None = None, size: Any = None) -> Any:
        if size is not None:
            return self.gen.integers(low, high, size)
        if high is None:
            low, high = 0, low
        return low + min(int(self.random() * (high - low)), high - low - 1)

    def permutation(self, n: int) -> list[int]:
        out = list(range(n))
        for i in range(n - 1, 0, -1):  # Fisher-Yates
            j = self.integers(i + 1)
            out[i], out[j] = out[j], out[i]
        return out

    def choice(self, a: Any, size: Any = None, replace: bool = True, p: Any = None) -> Any:
        if size is not None or not isinstance(a, int):
            return self.gen.choice(a, size=size, replace=replace, p=p)
        if p is None:
            return self.integers(a)
        u, acc = self.random(), 0.0
        for i, w in enumerate(p):
            acc += w
            if u < acc:
                return i
        return a - 1

    def __getattr__(self, name: str) -> Any:  # dirichlet, beta, standard_normal, ...
        return getattr(self.gen, name)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


class Node:
    """Anything that can sit in a pipeline: samples records from a generator.

    Subclasses store every ``__init__`` argument under the same attribute name, so that
    :meth:`get_config` can rebuild them (used by YAML/JSON serialisation).
    """

    name: ClassVar[str] = "node"

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"op": self.name}
        for pname, param in inspect.signature(type(self).__init__).parameters.items():
            if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = getattr(self, pname)
            if pname == "ops":
                value = [child.get_config() for child in value]
            cfg[pname] = _plain(value)
        return cfg

    def __repr__(self) -> str:
        cfg = self.get_config()
        cfg.pop("op")
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k != "ops")
        if "ops" in cfg:
            args = (args + ", " if args else "") + f"ops=[{len(cfg['ops'])} ops]"
        return f"{type(self).__name__}({args})"


class Op(Node):
    """A leaf op: with probability ``p`` it samples parameters and appends one record.

    Kernels are class-level and take only ``params`` (which carry everything, fill and
    interpolation included), so a record replays without the op instance.

    ``kind`` tells the planner how the op may be fused:
      - ``"geometric"``: a homography (:meth:`matrix`), fused with its geometric neighbours into a
        single resampling;
      - ``"color"``: an affine colour transform (:meth:`color_matrix`), fused with its neighbours;
      - ``"lut"``: a per-value function (:meth:`lut_fn`), fused into one lookup table on uint8;
      - ``"field"``: a non-linear warp (elastic, grid distortion);
      - ``"pixel"``: anything else (:meth:`apply_np`);
      - ``"final"``: normalisation to a float tensor, last in a pipeline.
    """

    kind: ClassVar[str] = "pixel"

    def __init__(self, p: float = 1.0) -> None:
        self.p = check_prob(self.name, p)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if self.p < 1.0 and not rng.random() < self.p:
            return
        params = self.make_params(rng, canvas)
        out.append({"op": self.name, "params": params})
        h, w = self.output_size(params, canvas.size)
        canvas.height, canvas.width = h, w

    # -- sampling --------------------------------------------------------------------------
    def make_params(self, rng: np.random.Generator, canvas: Canvas) -> dict[str, Any]:
        return {}

    # -- kernels (class level, params only) -------------------------------------------------
    @classmethod
    def output_size(cls, params: dict[str, Any], size: Size) -> Size:
        return size

    @classmethod
    def apply_np(cls, image: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        """Apply to one HWC image (uint8 in [0, 255] or float32 in [0, 1])."""
        raise NotImplementedError(f"{cls.name} has no per-image kernel")

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """Apply to a batch ``N x C x H x W`` on its device, one params dict per image.

        The default runs the per-image numpy kernel on CPU and moves the result back. Ops that
        matter for throughput override this with a device-native kernel.
        """
        from augmentor.backends.torch_batch import per_image_numpy

        return per_image_numpy(cls, images, params)


def finish_like(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Round, clip and cast a float result back to ``like``'s dtype and range."""
    if like.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def max_value(image: np.ndarray) -> float:
    return 255.0 if image.dtype == np.uint8 else 1.0
