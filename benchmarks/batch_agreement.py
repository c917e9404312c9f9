"""How far the batched torch path is from the per-image OpenCV path when a warp shrinks.

    python benchmarks/batch_agreement.py

Six 128-px copies of scikit-image's astronaut (rolled), seeded pipelines; prints, per
pipeline, the mean and largest absolute difference in levels of 255 (the check
``tests/test_batch.py`` makes, with numbers).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch
from skimage import data

import augmentor

photo = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
P = {
    "Resize(24) + Rotate(10)": [augmentor.Resize(24), augmentor.Rotate(10)],
    "RandomResizedCrop(20, scale 0.6-1)": [augmentor.RandomResizedCrop(20, scale=(0.6, 1.0))],
    "Affine(scale 0.25-0.45)": [augmentor.Affine(degrees=20, scale=(0.25, 0.45))],
}
for name, ops in P.items():
    pipe = augmentor.Pipeline(ops, seed=9)
    imgs = np.stack([np.roll(photo, 9 * i, axis=0) for i in range(6)])
    out = pipe.batch(
        torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), indices=list(range(6))
    )
    d = [
        np.abs(out[i].permute(1, 2, 0).numpy().astype(int) - pipe(imgs[i], index=i).astype(int))
        for i in range(6)
    ]
    print(f"| {name} | {np.mean([x.mean() for x in d]):.2f} | {max(x.max() for x in d)} |")
