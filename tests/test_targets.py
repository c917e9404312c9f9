"""Masks, boxes and keypoints move with the image (torchvision tv_tensors convention)."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

import augmentor

PIPES = {
    "rrc-flip-rot": [
        augmentor.RandomResizedCrop(96, scale=(0.5, 1.0)),
        augmentor.HorizontalFlip(p=1.0),
        augmentor.Rotate(25),
    ],
    "affine": [augmentor.Affine(degrees=15, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=8)],
    "perspective": [augmentor.Perspective(0.4, p=1.0)],
    "elastic": [augmentor.Elastic(alpha=4.0, sigma=6.0)],
    "policy": [augmentor.TrivialAugmentWide()],
}


def scene():
    img = np.zeros((128, 128, 3), np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    img[40:80, 50:90] = 200
    mask[40:80, 50:90] = 1
    return img, mask, np.array([[50.0, 40.0, 90.0, 80.0]]), np.array([[70.0, 60.0]])


@pytest.mark.parametrize("name", PIPES)
def test_dict_of_numpy_targets_follow(name):
    img, mask, boxes, kps = scene()
    pipe = augmentor.Pipeline(PIPES[name], seed=1)
    for idx in range(3):
        out = pipe({"image": img, "mask": mask, "boxes": boxes, "keypoints": kps}, index=idx)
        m = out["mask"]
        assert m.shape == out["image"].shape[:2] and set(np.unique(m)) <= {0, 1}
        ys, xs = np.nonzero(m)
        if len(xs) < 20:
            continue  # square moved out of the canvas
        # the mask is where the image's square went
        assert (out["image"][m == 1].mean(axis=1) > 100).mean() > 0.9
        x0, y0, x1, y1 = out["boxes"][0]
        assert x0 <= xs.min() + 2 and y0 <= ys.min() + 2
        assert x1 >= xs.max() - 1 and y1 >= ys.max() - 1
        h, w = m.shape
        if xs.min() == 0 or ys.min() == 0 or xs.max() == w - 1 or ys.max() == h - 1:
            continue  # square cut by the border: its visible centroid is not its centre
        kx, ky = out["keypoints"][0]
        # the moved centre point stays near the centroid of the moved square
        assert abs(kx - (xs.mean() + 0.5)) < 6 and abs(ky - (ys.mean() + 0.5)) < 6


def test_tv_tensors_in_tv_tensors_out():
    img, mask, boxes, kps = scene()
    pipe = augmentor.Pipeline(PIPES["rrc-flip-rot"], seed=4)
    sample = {
        "image": tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1)),
        "mask": tv_tensors.Mask(torch.from_numpy(mask)),
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor([[50.0, 40.0, 40.0, 40.0]]), format="XYWH", canvas_size=(128, 128)
        ),
        "label": 3,
    }
    out = pipe(sample, index=0)
    assert isinstance(out["image"], tv_tensors.Image) and out["image"].shape == (3, 96, 96)
    assert isinstance(out["mask"], tv_tensors.Mask) and out["mask"].shape == (96, 96)
    assert isinstance(out["boxes"], tv_tensors.BoundingBoxes)
    assert out["boxes"].format == tv_tensors.BoundingBoxFormat.XYWH
    assert tuple(out["boxes"].canvas_size) == (96, 96)
    assert out["label"] == 3
    ys, xs = np.nonzero(out["mask"].numpy())
    x, y, w, h = out["boxes"][0].tolist()
    assert x <= xs.min() + 2 and y <= ys.min() + 2 and x + w >= xs.max() - 1


def test_hflip_boxes_exact():
    img, mask, boxes, kps = scene()
    out = augmentor.Pipeline([augmentor.HorizontalFlip(p=1.0)])(
        {"image": img, "boxes": boxes, "keypoints": kps}
    )
    np.testing.assert_allclose(out["boxes"], [[128 - 90, 40, 128 - 50, 80]])
    np.testing.assert_allclose(out["keypoints"], [[128 - 70, 60]])
