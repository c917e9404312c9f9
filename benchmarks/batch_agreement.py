"""How far the batched torch path is from the per-image OpenCV path, and what each costs.

    python benchmarks/batch_agreement.py

First table: six 128-px copies of scikit-image's astronaut (rolled), seeded pipelines that
shrink; per pipeline, the mean and largest absolute difference in levels of 255 (the check
``tests/test_batch.py`` makes, with numbers). Second table: the pixel ops whose device kernels
came last (issue 20 #14): each op's ``apply_torch`` on 64 copies at 224 px against the per-image
kernel (levels of 255), and milliseconds per image for the per-image kernel, for
``pipe.batch`` on a CPU tensor and for ``apply_torch`` on the CPU (the anchor is the per-image
kernel; on a GPU, ``pipe.batch`` is ``apply_torch``).
"""

import sys
import time
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


big = cv2.resize(data.astronaut(), (224, 224), interpolation=cv2.INTER_AREA)
imgs = np.stack([np.roll(big, 7 * i, axis=0) for i in range(64)])
batch = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()


def per_call(f, n: int = 3) -> float:  # milliseconds per call of f, after one warm-up
    f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


print()
print(
    "| op | kernel max | values differing | per image ms | batch (CPU) ms/img "
    "| apply_torch (CPU) ms/img |"
)
print("|---|---|---|---|---|---|")
OPS = {
    "gaussian_noise": augmentor.GaussianNoise(),
    "speckle_noise": augmentor.SpeckleNoise(),
    "salt_pepper": augmentor.SaltPepper(),
    "jpeg": augmentor.Jpeg(),
    "hue": augmentor.Hue(0.1),
}
for name, op in OPS.items():
    pipe = augmentor.Pipeline([op], seed=9)
    params = [pipe.sample_params(big.shape[:2], index=i)[0]["params"] for i in range(64)]
    direct = type(op).apply_torch(batch, params)
    d = [
        np.abs(direct[i].permute(1, 2, 0).numpy().astype(int) - pipe(imgs[i], index=i).astype(int))
        for i in range(64)
    ]
    kernel_fn = type(op).apply_torch
    one = per_call(lambda p=pipe: [p(imgs[i], index=i) for i in range(64)]) / 64
    batched = per_call(lambda p=pipe: p.batch(batch, indices=list(range(64)))) / 64
    kernel = per_call(lambda k=kernel_fn, q=params: k(batch, q)) / 64
    print(
        f"| {name} | {max(x.max() for x in d)} | {np.mean([(x > 0).mean() for x in d]):.5%} "
        f"| {one:.3f} | {batched:.3f} ({batched / one:.2f}×) | {kernel:.3f} ({kernel / one:.2f}×) |"
    )
