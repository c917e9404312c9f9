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
import zlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from augmentor._validation import check_prob, plain
from augmentor.types import Canvas, OpKind, Record, Size

__all__ = [
    "Canvas",
    "Node",
    "Op",
    "Record",
    "SampleRng",
    "Size",
    "finish_like",
    "finish_tensor",
    "fires",
    "max_value",
    "per_image_numpy",
    "tensor_max_value",
    "to_numpy_hwc",
]

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

    __slots__ = ("_buf", "_decisions", "_i", "_salt", "gen")

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._buf: list[float] = []
        self._i = 0
        self._salt: int | None = None
        self._decisions: dict[str, int] = {}

    def decide(self, name: str) -> float:
        """The uniform that decides whether op ``name`` fires: its own stream, keyed by the
        sample's salt, the op's name and how many times that name has decided in this sample.

        Taking the decision from the shared stream made every op with the same ``p`` fire on
        the same indices in every pipeline of one seed (the first uniform decided whichever op
        came first). A fresh numpy generator per decision would cost ~10 us a time, a third of
        the per-image budget; a 64-bit hash (SplitMix64's finaliser) costs well under 1 us,
        which is why it is written here rather than taken from numpy.
        """
        if self._salt is None:
            self._salt = int(self.gen.integers(0, 1 << 63))
        n = self._decisions.get(name, 0)
        self._decisions[name] = n + 1
        key = _mix64(self._salt ^ _mix64((_name_word(name) << 32) | n))
        return (key >> 11) * 2.0**-53

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


_M64 = (1 << 64) - 1
_NAME_WORDS: dict[str, int] = {}


def _name_word(name: str) -> int:
    word = _NAME_WORDS.get(name)
    if word is None:
        word = _NAME_WORDS[name] = zlib.crc32(name.encode())
    return word


def _mix64(x: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit words that scatters every input bit."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def fires(rng: np.random.Generator, p: float, name: str) -> bool:
    """Whether an op ``name`` with probability ``p`` fires for this sample: from the op's own
    decision stream (:meth:`SampleRng.decide`); a plain generator draws from itself."""
    if p >= 1.0:
        return True
    decide = getattr(rng, "decide", None)
    return bool((decide(name) if decide is not None else rng.random()) < p)


def to_numpy_hwc(t: Any) -> np.ndarray:
    """A ``C x H x W`` tensor as the HWC array a numpy kernel takes (uint8 kept, else float32)."""
    a = t.detach().to("cpu").permute(1, 2, 0).numpy()
    return np.ascontiguousarray(a if a.dtype == np.uint8 else a.astype(np.float32))


def per_image_numpy(
    kernel: Callable[[np.ndarray, dict[str, Any]], np.ndarray],
    images: Any,
    params: list[dict[str, Any]],
) -> Any:
    """A numpy kernel on each image of an ``N x C x H x W`` tensor, back on its device: the
    batched path's fallback for ops with no device kernel (and for the cases a device kernel
    does not cover). Here, not in the executor, so ops may call it (torch imported lazily)."""
    import torch

    outs = [
        torch.from_numpy(kernel(to_numpy_hwc(img), p)).permute(2, 0, 1)
        for img, p in zip(images, params)
    ]
    return torch.stack(outs).to(
        images.device, images.dtype if outs[0].dtype != torch.float32 else torch.float32
    )


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
            cfg[pname] = plain(value)
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
      - ``"mix"``: a blend of the input with augmented chains of it (AugMix), whose records
        the executor runs;
      - ``"final"``: normalisation to a float tensor, last in a pipeline.
    """

    kind: ClassVar[OpKind] = "pixel"

    def __init__(self, p: float = 1.0) -> None:
        self.p = check_prob(self.name, p)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
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

    # A batched kernel ``apply_torch(images N x C x H x W, params list) -> images`` on the
    # images' device, for the ops that matter for throughput; None (the default) lets the
    # batched executor run :meth:`apply_np` per image.
    apply_torch: ClassVar[Any] = None
    # True where the per-image numpy kernel beats ``apply_torch`` on CPU tensors (both write the
    # same pixels): the batched executor then uses it for a CPU batch
    numpy_on_cpu: ClassVar[bool] = False


def finish_like(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Round, clip and cast a float result back to ``like``'s dtype and range."""
    if like.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def max_value(image: np.ndarray) -> float:
    return 255.0 if image.dtype == np.uint8 else 1.0


def finish_tensor(y: Any, dtype: Any) -> Any:
    """:func:`finish_like` for torch: round (uint8), clip and cast a float result ``y`` to
    ``dtype``, in place where it can (the batched kernels' last step)."""
    import torch

    if dtype == torch.uint8:
        return y.round_().clamp_(0, 255).to(torch.uint8)
    return y.clamp_(0.0, 1.0).to(dtype)


def tensor_max_value(images: Any) -> float:
    """:func:`max_value` for torch: 255 for uint8 images, 1 for float ones."""
    import torch

    return 255.0 if images.dtype == torch.uint8 else 1.0
