"""One seeding module: every stream is (seed, purpose, keys...), no two can coincide."""

import numpy as np
import pytest

from augmentor.seeding import PURPOSES, rng_for, stream, torch_generator


def test_purposes_are_distinct_words():
    assert len(set(PURPOSES.values())) == len(PURPOSES)


def test_same_key_same_stream_other_purpose_other_stream():
    a = stream(7, "split", 3).random(4)
    assert np.array_equal(a, stream(7, "split", 3).random(4))
    others = [stream(7, p, 3).random(4) for p in PURPOSES if p != "split"]
    assert all(not np.allclose(a, o) for o in others)


def test_the_former_collisions_are_gone():
    # The synthetic-image pick used rng_for(seed, epoch, 0) and the MixUp draw
    # default_rng([seed, step, 0]): both equal to sample 0's augmentation stream.
    seed, epoch = 3, 2
    augment = rng_for(seed, epoch, 0).random(8)
    old_pick = np.random.default_rng([seed, epoch, 0]).random(8)
    assert np.array_equal(augment, old_pick)  # what was wrong
    for purpose in ("synthetic-pick", "batch-mix", "epoch-order", "draw", "split"):
        assert not np.allclose(augment, stream(seed, purpose, epoch, 0).random(8))
        assert not np.allclose(augment, stream(seed, purpose, epoch).random(8))
    # a keyed stream never equals an augmentation stream whatever the keys
    # (numpy pads the entropy before the spawn key, so the words differ in number)
    for index in range(50):
        a = rng_for(seed, epoch, index).random(2)
        assert not np.allclose(a, stream(seed, "split", epoch, index).random(2))


def test_torch_generator_is_seeded_from_the_same_key():
    import torch

    a = torch.rand(4, generator=torch_generator(1, "generator-step", 5))
    b = torch.rand(4, generator=torch_generator(1, "generator-step", 5))
    c = torch.rand(4, generator=torch_generator(1, "generator-step", 6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "3"])
def test_keys_are_32_bit_words(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        stream(0, "split", bad)
    with pytest.raises(ValueError, match="non-negative integer"):
        rng_for(bad, 0, 0)


def test_unknown_purpose_is_refused():
    with pytest.raises(ValueError, match="unknown random-stream purpose 'shuffle'"):
        stream(0, "shuffle")
