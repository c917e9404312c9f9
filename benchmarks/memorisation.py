"""Does the memorisation check see copies of training images? Planted copies of each kind.

    python benchmarks/memorisation.py [--real 1000] [--copies 200] [--image-size 64]

"Real" is the bundled Fashion-MNIST training subset; "fakes" are copies of ``--copies`` of
its images, each kind in turn (exact; N(0, 8) pixel noise; a shift of 2 px down and right,
the border filled black; a mirror image; a JPEG re-encode at quality 75; a rescale to 85% and
back), plus, as the control, the same number of distinct images from the bundled *test*
subset (never in "real"). ``--dataset lfw``: 100 of scikit-image's faces are "real", the
other 100 the control. Printed: the share of
each kind flagged by the feature test alone (the check before issue 20), by the pixel test
alone, and by both together (the check now); the control's share is the false-alarm rate.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augmentor.datasets import fashion_mnist_subset, lfw_faces
from transfer.quality import FeatureSpace, memorisation_features, pixel_copies


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf))


def _rescale(img: np.ndarray, f: float) -> np.ndarray:
    from PIL import Image

    h, w = img.shape
    small = Image.fromarray(img).resize((round(w * f), round(h * f)), Image.Resampling.BILINEAR)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))


KINDS = {
    "exact": lambda x, rng: x,
    "noise N(0, 8)": lambda x, rng: np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8),
    "shift 2 px": lambda x, rng: np.pad(x, ((2, 0), (2, 0)))[:-2, :-2],
    "mirror": lambda x, rng: x[:, ::-1].copy(),
    "JPEG q75": lambda x, rng: _jpeg(x, 75),
    "rescale 85%": lambda x, rng: _rescale(x, 0.85),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", type=int, default=1000)
    ap.add_argument("--copies", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--dataset",
        choices=["fashion-mnist", "lfw"],
        default="fashion-mnist",
        help="lfw: scikit-image's 200 faces, half real, half the control (copies of the rest)",
    )
    args = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    if args.dataset == "lfw":
        faces = lfw_faces().images
        faces = faces[..., 0] if faces.ndim == 4 else faces
        order = rng.permutation(len(faces))
        real, control = faces[order[:100]], faces[order[100:]]
        args.copies = min(args.copies, 100)
    else:
        train, test = fashion_mnist_subset("train"), fashion_mnist_subset("test")
        real, control = train.images[: args.real], test.images[: args.copies]
    picks = rng.choice(len(real), args.copies, replace=False)
    space = FeatureSpace(image_size=args.image_size)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x))[:, None]

    real_t = tensor(real)
    fr = space(real_t)
    sets = {k: np.stack([f(real[i], rng) for i in picks]) for k, f in KINDS.items()}
    sets["control: distinct images"] = control[: args.copies]
    print(
        f"{len(real)} real images, {args.copies} fakes per kind, features at "
        f"{args.image_size} px; {platform.processor() or platform.machine()}"
    )
    print("| fakes | feature test (before) | pixel test | either (now) |")
    print("|---|---|---|---|")
    for name, fakes in sets.items():
        fake_t = tensor(fakes)
        copies = pixel_copies(real_t, fake_t)
        mem = memorisation_features(fr, space(fake_t), copies)
        print(
            f"| {name} | {mem['feature_duplicate_rate']:.1%} | {mem['pixel_copy_rate']:.1%} "
            f"| {mem['near_duplicate_rate']:.1%} |"
        )
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
