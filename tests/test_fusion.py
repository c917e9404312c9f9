"""Fused execution equals op-by-op execution (within interpolation), and never changes meaning."""

import numpy as np
import pytest

import augmentor
from augmentor.backends.cpu import apply_records
from augmentor.backends.plan import ColorStep, WarpStep, plan


def sequential(records, img):
    for r in records:
        img = apply_records([r], img)
    return img


GEOMETRIC = [
    [
        augmentor.RandomResizedCrop(96, scale=(0.3, 1.0)),
        augmentor.HorizontalFlip(p=1.0),
        augmentor.Rotate(20),
    ],
    [
        augmentor.Affine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5),
        augmentor.CenterCrop(100),
    ],
    [augmentor.Resize(100), augmentor.RandomCrop(80, padding=8), augmentor.VerticalFlip(p=1.0)],
    [augmentor.Pad(6), augmentor.Perspective(0.3, p=1.0)],
]


@pytest.mark.parametrize(
    "ops", GEOMETRIC, ids=["rrc-flip-rot", "affine-crop", "resize-crop", "pad-persp"]
)
def test_fused_geometry_matches_sequential(ops, photo):
    pipe = augmentor.Pipeline(ops, seed=0)
    for idx in range(4):
        records = pipe.sample_params(photo.shape[:2], index=idx)
        fused = apply_records(records, photo)
        seq = sequential(records, photo)
        assert fused.shape == seq.shape
        diff = np.abs(fused.astype(int) - seq.astype(int))
        # one resampling instead of several: small differences, mostly at edges and texture
        assert diff.mean() < 6.0, (idx, diff.mean())
        # never a change of meaning: where sequential filled (black corners), fused does too
        filled = (seq == 0).all(axis=2)
        assert (fused[filled] < 60).mean() > 0.95


def test_rrc_flip_rotate_is_one_warp(photo):
    pipe = augmentor.Pipeline(GEOMETRIC[0], seed=0)
    steps = plan(pipe.sample_params(photo.shape[:2], index=0), photo.shape[:2])
    assert len(steps) == 1 and isinstance(steps[0], WarpStep)
    assert steps[0].clip is not None  # rotation after the crop reads outside it: fill, not image


def test_two_rotations_are_not_fused(photo):
    recs = [
        {"op": "rotate", "params": {"angle": 30.0, "interpolation": "bilinear", "fill": 0.0}}
    ] * 2
    steps = plan(recs, photo.shape[:2])
    assert len(steps) == 2  # fusing would drop the corners the first rotation filled


def test_colour_ops_fuse_and_match_sequential(photo):
    """Fused colour maps clip once; op by op clips after each op. They agree (up to the
    rounding of each intermediate uint8 image) wherever no intermediate value left [0, 255]."""
    from augmentor.backends.fuse import compose_color

    pipe = augmentor.Pipeline(
        [augmentor.ColorJitter(0.3, 0.3, 0.3), augmentor.Grayscale(p=0.5), augmentor.Invert(p=0.5)],
        seed=2,
    )
    for idx in range(6):
        records = pipe.sample_params(photo.shape[:2], index=idx)
        steps = plan(records, photo.shape[:2])
        assert all(isinstance(s, ColorStep) for s in steps)
        fused, seq = apply_records(records, photo), sequential(records, photo)
        x = photo.reshape(-1, 3).astype(float)
        inside = np.ones(len(x), bool)
        for r in records:  # exact maths, to find the pixels that clip along the way
            m, b = compose_color([r], x.mean(axis=0), 255.0)
            x = x @ m.T + b
            inside &= ((x >= 0) & (x <= 255)).all(axis=1)
        diff = np.abs(fused.astype(int) - seq.astype(int)).reshape(-1, 3).max(axis=1)
        assert inside.mean() > 0.2
        assert diff[inside].max() <= len(records) + 1, idx


def test_luma_family_shortcut_equals_the_matrix_product():
    """ColorJitter's ops compose as three floats; check them against the product of each op's
    own 3x3 matrix, with the mean pushed through op by op."""
    from augmentor.backends.fuse import compose_luma_family, luma_family_matrix
    from augmentor.registry import OPS

    rng = np.random.default_rng(0)
    names = ["brightness", "contrast", "saturation", "grayscale"]
    for _ in range(50):
        records = []
        for name in rng.choice(names, size=int(rng.integers(1, 6))):
            params = {} if name == "grayscale" else {"factor": float(rng.uniform(0.2, 1.8))}
            records.append({"op": str(name), "params": params})
        mean = rng.uniform(0, 255, 3)
        m_tot, b_tot, mu = np.eye(3), np.zeros(3), mean
        for r in records:
            m, b = OPS.get(r["op"]).color_matrix(r["params"], mu, 255.0)
            m_tot, b_tot, mu = m @ m_tot, m @ b_tot + b, m @ mu + b
        luma = float(np.dot([0.299, 0.587, 0.114], mean))
        mat = luma_family_matrix(*compose_luma_family(records, luma))
        np.testing.assert_allclose(mat[:, :3], m_tot, atol=1e-12)
        np.testing.assert_allclose(mat[:, 3], b_tot, atol=1e-9)
    assert compose_luma_family([{"op": "invert", "params": {}}], 0.0) is None


def test_flips_and_integer_crops_are_exact(photo):
    recs = [
        {"op": "hflip", "params": {}},
        {"op": "crop", "params": {"top": 5, "left": 7, "height": 50, "width": 60, "fill": 0.0}},
        {"op": "vflip", "params": {}},
    ]
    expected = photo[:, ::-1][5:55, 7:67][::-1]
    np.testing.assert_array_equal(apply_records(recs, photo), expected)


def test_crop_with_padding_fills(photo):
    recs = [
        {"op": "crop", "params": {"top": -4, "left": -4, "height": 20, "width": 20, "fill": 1.0}}
    ]
    out = apply_records(recs, photo)
    assert (out[:4] == 255).all() and (out[:, :4] == 255).all()
    np.testing.assert_array_equal(out[4:, 4:], photo[:16, :16])
