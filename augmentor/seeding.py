"""Every random stream of the project, derived in one place as ``(seed, purpose, keys...)``.

Randomness is passed in, never global (diffusers' ``generator=`` habit): library code asks this
module for a generator and draws from it. Two schemes exist, and no two streams can coincide:

* the **augmentation** stream of a sample, :func:`rng_for` ``(seed, epoch, index)``: numpy's
  ``default_rng([seed, epoch, index])``, three 32-bit words. It is the contract that makes a
  sample's augmentation independent of the worker count; it is kept as it always was, so
  augmented folders written before stay byte-identical.
* every **other** stream, :func:`stream` ``(seed, purpose, *keys)``: the same words plus a
  *spawn key* naming the purpose (numpy's ``SeedSequence(entropy, spawn_key=...)``). numpy
  pads the entropy to its pool size before appending a spawn key, so such a stream hashes at
  least five words and can never equal a three-word augmentation stream; and two purposes
  differ in their spawn key. The purposes are listed in :data:`PURPOSES` (a test checks they
  are distinct); an unknown purpose is an error, so a new stream is a new line there.

Example:
    >>> a = stream(0, "split", 1).random()
    >>> a == stream(0, "split", 1).random(), a == stream(0, "draw", 1).random()
    (True, False)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_WORD", "PURPOSES", "global_seed", "rng_for", "stream", "torch_generator"]

MAX_WORD = 2**32 - 1  # seeds, epochs, indices and keys are single 32-bit words

# purpose -> its spawn-key word. Never reuse or renumber a word: it would change that stream.
PURPOSES: dict[str, int] = {
    "split": 1,  # stratified train/validation and repeated train/test splits
    "draw": 2,  # few-shot training draws (per_class_draws)
    "epoch-order": 3,  # the order (or balanced draw) of samples in an epoch (EpochSampler)
    "synthetic-pick": 4,  # which synthetic images fill an epoch's synthetic slots
    "batch-mix": 5,  # MixUp / CutMix on a fine-tuning batch
    "probe-shuffle": 6,  # the linear probe's batch order
    "probe-synthetic": 7,  # which synthetic feature rows join the probe
    "generator-step": 8,  # every draw of a generator training step (batch, noise, t, ...)
    "generator-sample": 9,  # a chunk of synthetic images written by `augment sample`
    "generator-eval": 10,  # the fixed noise of sample grids and quality checks
    "variation": 11,  # variations of real images (vary)
    "replacement": 12,  # in-batch replacement of a real image by one of its variations
    "quality": 13,  # KID subsets and generator-quality samples
    "dataset": 14,  # random patches of the texture datasets
    "head-init": 15,  # the classifier head's initial weights
    "dropout": 16,  # dropout and other stochastic layers of a training step
    "tune": 17,  # candidate splits and views of `augment tune`
    "audit": 18,  # folds of `augment audit`
    "op-decision": 19,  # reserved: per-op apply/skip decisions
    "feature-view": 20,  # the augmentation of a cached feature view (by image content)
    "init": 21,  # the initial weights of networks built by the library
    "duplicate-pick": 22,  # which real images fill the duplicated-reals control's slots
    "calibration-fold": 23,  # the networks of the out-of-fold calibration runs
}


def _word(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not 0 <= int(value) <= MAX_WORD:
        raise ValueError(f"{name} must be a non-negative integer <= {MAX_WORD}, got {value!r}")
    return int(value)


def rng_for(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The augmentation generator of sample ``index`` at ``epoch`` for a pipeline ``seed``.

    Example:
        >>> rng_for(0, 0, 5).random() == rng_for(0, 0, 5).random()
        True
    """
    words = [_word("seed", seed), _word("epoch", epoch), _word("index", index)]
    return np.random.default_rng(words)


def _sequence(seed: int, purpose: str, keys: tuple[Any, ...]) -> np.random.SeedSequence:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown random-stream purpose {purpose!r} (add it to PURPOSES)")
    words = [_word("seed", seed), *(_word(f"key {i}", k) for i, k in enumerate(keys))]
    return np.random.SeedSequence(words, spawn_key=(PURPOSES[purpose],))


def stream(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """The numpy generator of ``purpose`` for ``seed`` and ``keys`` (each a 32-bit word)."""
    return np.random.default_rng(_sequence(seed, purpose, keys))


def torch_generator(
    seed: int, purpose: str, *keys: int, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A torch generator on ``device`` seeded from the same ``(seed, purpose, keys)``."""
    import torch

    state = _sequence(seed, purpose, keys).generate_state(2, np.uint32)
    g = torch.Generator(device=device)
    g.manual_seed((int(state[0]) << 31) ^ int(state[1]))  # < 2**63, as torch requires
    return g


@contextmanager
def global_seed(seed: int, purpose: str = "init", *keys: int) -> Iterator[None]:
    """Seed the global generators of torch (CPU and CUDA), numpy and ``random`` from
    ``(seed, purpose, keys)`` inside the block, and give the caller its own states back after.

    Some draws cannot take a generator: a network's initial weights (``nn.Module`` constructors)
    and the dropout of a training step draw from torch's global generator. A library call
    that builds or trains a network runs them inside this block, so its result is a function
    of its seed, and the caller's random state is the same before and after the call.
    """
    import random

    import torch

    word = int(_sequence(seed, purpose, keys).generate_state(1, np.uint32)[0])
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002 (restored)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(word)
        np.random.seed(word)  # noqa: NPY002 (the legacy global state is what is scoped)
        torch.manual_seed(word)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002
