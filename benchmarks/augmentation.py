"""Throughput of the standard augmentation pipeline, this project against the anchors.

    python benchmarks/augmentation.py [--images 240] [--repeats 3] [--batch 32] [--device cpu]

Pipeline: random resized crop 224, horizontal flip, rotate ±15°, colour jitter (brightness,
contrast, saturation 0.2), normalise to a float32 C x 224 x 224 tensor. Input: 256x256 RGB crops
of scikit-image's bundled photos (real images, offline). Single thread for everyone (the per-image
paths run inside DataLoader workers, one image per process). Each contestant's outputs are
checked for shape, dtype and value statistics against ours before its time counts.

Timed runs stream: each output is dropped once the next is made, as in a DataLoader that
collates a batch and frees it. (Keeping all outputs alive instead adds the same fresh-page cost,
about 0.2 ms per 600 kB output, to every contestant.)

Needs the ``bench`` extra (albumentations 2.0.8, Augmentor, kornia); a missing library is
reported and skipped.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def real_images(n: int, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """``n`` random ``size`` x ``size`` RGB crops of scikit-image's bundled photos."""
    import cv2
    from skimage import data

    photos = []
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
        "camera",
        "coins",
        "page",
        "text",
        "moon",
        "cat",
        "colorwheel",
        "logo",
        "motorcycle_left",
        "brick",
        "grass",
        "gravel",
    ):
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # some bundled images need pooch; skip them offline
            continue
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=2)
        img = img[..., :3].astype(np.uint8)
        if min(img.shape[:2]) < size:
            s = size / min(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * s) + 1, round(img.shape[0] * s) + 1))
        photos.append(img)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        y = int(rng.integers(0, p.shape[0] - size + 1))
        x = int(rng.integers(0, p.shape[1] - size + 1))
        out.append(np.ascontiguousarray(p[y : y + size, x : x + size]))
    return out


# -- contestants: each returns (name, prepare(images) -> inputs, run(inputs) -> list of outputs)


def standard_pipeline():
    import augmentor as A

    ops = [
        A.RandomResizedCrop(224),
        A.HorizontalFlip(p=0.5),
        A.Rotate(15),
        A.ColorJitter(0.2, 0.2, 0.2),
        A.Normalize(MEAN, STD),
    ]
    return A.Pipeline(ops, seed=0)


def to_batches(imgs: list[np.ndarray], batch: int, device: str) -> list:
    import torch

    t = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous().to(device)
    return [t[i : i + batch] for i in range(0, len(imgs), batch)]


def ours_per_image() -> tuple[Callable, Callable]:
    pipe = standard_pipeline()

    def run(imgs, keep=True):
        return _collect((pipe(x, index=i) for i, x in enumerate(imgs)), keep)

    return (lambda imgs: imgs), run


def ours_batched(batch: int, device: str) -> tuple[Callable, Callable]:
    import torch

    pipe = standard_pipeline()

    def prepare(imgs):
        return to_batches(imgs, batch, device)

    def run(batches, keep=True):
        outs, k = [], 0
        for b in batches:
            y = pipe.batch(b, indices=list(range(k, k + len(b))))
            k += len(b)
            if keep:
                outs.extend(y)
        if device != "cpu":
            torch.cuda.synchronize()
        return outs

    return prepare, run


def _collect(outputs, keep: bool) -> list:
    if keep:
        return list(outputs)
    for _ in outputs:
        pass
    return []


def torchvision_v2(pil: bool) -> tuple[Callable, Callable]:
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    ops = [
        v2.RandomResizedCrop(224, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(15),
        v2.ColorJitter(0.2, 0.2, 0.2),
    ]
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    t = v2.Compose(ops + tail)

    def prepare(imgs):
        if pil:
            return [Image.fromarray(x) for x in imgs]
        return [torch.from_numpy(x).permute(2, 0, 1).contiguous() for x in imgs]

    return prepare, (lambda xs, keep=True: _collect((t(x) for x in xs), keep))


def albumentations_() -> tuple[Callable, Callable]:
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    t = A.Compose(
        [
            A.RandomResizedCrop(size=(224, 224)),
            A.HorizontalFlip(p=0.5),
            A.Rotate(limit=15, border_mode=cv2.BORDER_CONSTANT, p=1.0),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=1.0),
            A.Normalize(mean=MEAN, std=STD),
            ToTensorV2(),
        ]
    )
    return (lambda imgs: imgs), (
        lambda xs, keep=True: _collect((t(image=x)["image"] for x in xs), keep)
    )


def augmentor_mdbloice() -> tuple[Callable, Callable]:
    import Augmentor
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    p = Augmentor.Pipeline()
    p.crop_random(probability=1.0, percentage_area=0.5)  # no random-resized-crop op
    p.resize(probability=1.0, width=224, height=224)
    p.flip_left_right(probability=0.5)
    p.rotate(probability=1.0, max_left_rotation=15, max_right_rotation=15)
    p.random_brightness(probability=1.0, min_factor=0.8, max_factor=1.2)
    p.random_contrast(probability=1.0, min_factor=0.8, max_factor=1.2)
    p.random_color(probability=1.0, min_factor=0.8, max_factor=1.2)
    aug = p.torch_transform()
    tail = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    )
    return (lambda imgs: [Image.fromarray(x) for x in imgs]), (
        lambda xs, keep=True: _collect((tail(aug(x)) for x in xs), keep)
    )


def kornia_(batch: int, device: str) -> tuple[Callable, Callable]:
    import kornia.augmentation as K
    import torch

    aug = K.AugmentationSequential(
        K.RandomResizedCrop((224, 224)),
        K.RandomHorizontalFlip(),
        K.RandomRotation(15.0, p=1.0),
        K.ColorJitter(0.2, 0.2, 0.2, 0.0, p=1.0),
        K.Normalize(mean=torch.tensor(MEAN), std=torch.tensor(STD)),
    )

    def prepare(imgs):
        return to_batches(imgs, batch, device)

    def run(batches, keep=True):
        outs = []
        with torch.no_grad():
            for b in batches:
                y = aug(b.float() / 255.0)
                if keep:
                    outs.extend(y)
        if device != "cpu":
            torch.cuda.synchronize()
        return outs

    return prepare, run


def check(outs: list, ref_stats: tuple[float, float] | None) -> tuple[str, tuple[float, float]]:
    import torch

    shapes = {tuple(o.shape) for o in outs}
    dtypes = {o.dtype for o in outs}
    stack = torch.stack([o.detach().float().cpu() for o in outs])
    stats = (float(stack.mean()), float(stack.std()))
    ok = shapes == {(3, 224, 224)} and dtypes == {torch.float32}
    if ref_stats is not None:
        ok = ok and abs(stats[0] - ref_stats[0]) < 0.25 and 0.75 < stats[1] / ref_stats[1] < 1.33
    return ("ok" if ok else f"MISMATCH {shapes} {dtypes}"), stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="device for the batched paths (cpu, cuda)")
    args = ap.parse_args()

    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    imgs = real_images(args.images)
    contestants: list[tuple[str, Callable[[], tuple[Callable, Callable]]]] = [
        ("ours, per image (numpy/OpenCV)", ours_per_image),
        (
            f"ours, batched ({args.device}, batch {args.batch})",
            lambda: ours_batched(args.batch, args.device),
        ),
        ("torchvision v2, tensor", lambda: torchvision_v2(False)),
        ("torchvision v2, PIL", lambda: torchvision_v2(True)),
        ("albumentations 2.0.8", albumentations_),
        ("Augmentor (crop 50% + resize)", augmentor_mdbloice),
        (f"kornia ({args.device}, batch {args.batch})", lambda: kornia_(args.batch, args.device)),
    ]
    rows = []
    ref_stats = None
    for name, make in contestants:
        try:
            prepare, run = make()
        except ImportError as e:
            rows.append((name, None, f"skipped: {e.name} not installed"))
            continue
        inputs = prepare(imgs)
        outs = run(inputs)  # warm-up, and the outputs to check
        status, stats = check(outs, ref_stats)
        if ref_stats is None:
            ref_stats = stats
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run(inputs, keep=False)
            times.append(time.perf_counter() - t0)
        rows.append((name, len(imgs) / statistics.median(times), status))

    ours = rows[0][1]
    print(
        f"\n{args.images} images 256x256 -> 3x224x224 float32, single thread, median of "
        f"{args.repeats}; {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, OpenCV {cv2.__version__}\n"
    )
    print(f"| {'pipeline':40s} | {'images/s':>9s} | {'ours per image is':>17s} | output check |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 19}|--------------|")
    for name, ips, status in rows:
        if ips is None:
            print(f"| {name:40s} | {'-':>9s} | {'-':>17s} | {status} |")
        else:
            print(f"| {name:40s} | {ips:9.1f} | {ours / ips:16.2f}x | {status} |")


if __name__ == "__main__":
    main()
