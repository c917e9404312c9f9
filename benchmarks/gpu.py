"""The GPU figures every issue asks for, in one process and one table (``scripts/gpu_check.sh``).

    python benchmarks/gpu.py [--device cuda] [--quick] [--out DIR]

1. Batched augmentation on the device: this project's ``Pipeline.batch`` against kornia's
   ``AugmentationSequential`` (the standard pipeline of ``benchmarks/augmentation.py``: random
   resized crop 224, flip, rotate ±15°, colour jitter 0.2, normalise), 256x256 real photos,
   the same batches, images/s after a warm-up pass.
2. Fine-tuning throughput at 224 px (EfficientNet-Lite0, every layer training, AdamW, bf16
   mixed precision and channels_last on a GPU): this project's fine-tuning stage on Lightning
   (``finetune(strategy="full")``, its logged ``train/images_per_s``) against a plain PyTorch
   loop over the same DataLoader, model and optimizer. The ratio is the overhead of the
   framework around the same work.
3. Generator training: steps/s of each generator (``train_generator``) on the bundled
   Fashion-MNIST subset.

``--quick`` shrinks every size so the whole script runs on a CPU in a minute or two (a smoke
test of the code paths, not figures). The table is printed and written to ``DIR/gpu.md`` with
``DIR/gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augmentation import MEAN, STD, real_images, standard_pipeline


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def augmentation(device: str, images: int, batch: int, passes: int) -> list[dict[str, Any]]:
    imgs = real_images(images)
    data = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous().to(device)
    batches = [data[i : i + batch] for i in range(0, len(data), batch)]
    pipe = standard_pipeline()

    def ours() -> None:
        k = 0
        for b in batches:
            pipe.batch(b, indices=list(range(k, k + len(b))))
            k += len(b)

    contestants: list[tuple[str, Any]] = [(f"ours, Pipeline.batch ({device})", ours)]
    try:
        import kornia.augmentation as K

        aug = K.AugmentationSequential(
            K.RandomResizedCrop((224, 224)),
            K.RandomHorizontalFlip(),
            K.RandomRotation(15.0, p=1.0),
            K.ColorJitter(0.2, 0.2, 0.2, 0.0, p=1.0),
            K.Normalize(mean=torch.tensor(MEAN), std=torch.tensor(STD)),
        ).to(device)

        def kornia_run() -> None:
            with torch.no_grad():
                for b in batches:
                    aug(b.float() / 255.0)

        contestants.append((f"kornia ({device})", kornia_run))
    except ImportError as e:
        print(f"kornia not installed ({e}); skipped", file=sys.stderr)
    rows = []
    for name, run in contestants:
        run()  # warm-up (kernels, caches)
        _sync(device)
        times = []
        for _ in range(passes):
            t = time.perf_counter()
            run()
            _sync(device)
            times.append(time.perf_counter() - t)
        rows.append(
            {
                "part": "augmentation",
                "what": name,
                "value": images / float(np.median(times)),
                "unit": f"images/s (batch {batch}, {images} images 256 px -> 224)",
            }
        )
    return rows


def finetuning(device: str, size: int, epochs: int, workers: int, out: Path) -> list[dict]:
    from augmentor.datasets import fashion_mnist_subset
    from augmentor.trainer import default_precision
    from transfer.config import FinetuneConfig
    from transfer.data import EpochSampler, TrainImages
    from transfer.finetuning import build_classifier, finetune
    from transfer.images import LabelledImages
    from transfer.preprocess import PreprocessModule

    ds = fashion_mnist_subset("train")
    data = LabelledImages.from_arrays(ds.images, ds.labels, ds.classes, "fmnist")
    config = FinetuneConfig(
        strategy="full",
        image_size=size,
        epochs=epochs,
        preset="light",
        mixup=0.0,
        cutmix=0.0,
        val_fraction=0.0,
        num_workers=workers,
        devices=1,
    )
    result = finetune(data, out / "ft", config, progress=False, export=False, overwrite=True)
    ours = result.train_images_per_s or 0.0

    # the plain loop: the same model, optimizer, precision, memory format and DataLoader
    model, pre = build_classifier(config, len(data.classes))
    for p in model.parameters():
        p.requires_grad_(True)
    model = model.to(device)
    amp = default_precision() != "32-true"
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    train = TrainImages(data, PreprocessModule(pre), config.augmentation(), None, 0.0, config.seed)
    sampler = EpochSampler(len(train), config.seed)
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.startswith("cuda"),
        persistent_workers=workers > 0,
    )
    opt = torch.optim.AdamW(model.parameters(), config.lr, weight_decay=config.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    model.train()
    per_epoch = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        n, t = 0, time.perf_counter()
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if device.startswith("cuda"):
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=amp):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        _sync(device)
        per_epoch.append(n / (time.perf_counter() - t))
    plain = per_epoch[-1]  # the last epoch, as Lightning logs its last epoch's rate
    unit = f"train images/s at {size} px, {default_precision()}, {workers} workers"
    return [
        {
            "part": "fine-tuning",
            "what": "ours (Lightning, finetune full)",
            "value": ours,
            "unit": unit,
        },
        {"part": "fine-tuning", "what": "plain PyTorch loop", "value": plain, "unit": unit},
        {
            "part": "fine-tuning",
            "what": "overhead of ours",
            "value": (plain / ours - 1) * 100 if ours else float("nan"),
            "unit": "% more time per image than the plain loop",
        },
    ]


def generators(steps: int, out: Path) -> list[dict]:
    from augmentor.datasets import export_dataset
    from augmentor.generators.config import TrainConfig
    from augmentor.generators.fit import train_generator

    folder = out / "data"
    if not folder.exists():
        export_dataset("fashion-mnist-subset", folder)
    rows = []
    for kind in ("gan", "vae", "diffusion"):
        config = TrainConfig(kind, steps=steps, steps_per_epoch=steps, devices=1)
        t = time.perf_counter()
        result = train_generator(folder, out / kind, config, progress=False)
        total = time.perf_counter() - t
        rows.append(
            {
                "part": "generators",
                "what": f"{kind}, batch {result.config.batch_size}, 28 px",
                "value": result.steps / result.seconds,
                "unit": f"steps/s ({result.steps} steps; {total:.0f} s with set-up and saving)",
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke test")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--parts", default="augmentation,finetuning,generators")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    q = args.quick
    rows: list[dict] = []
    parts = args.parts.split(",")
    t0 = time.perf_counter()
    if "augmentation" in parts:
        rows += augmentation(args.device, 64 if q else 1024, 32 if q else 128, 1 if q else 5)
    if "finetuning" in parts:
        rows += finetuning(args.device, 64 if q else 224, 1 if q else 3, 0 if q else 8, out)
    if "generators" in parts:
        rows += generators(20 if q else 500, out)
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.machine()})"
    )
    head = (
        f"{device}; torch {torch.__version__}; python {platform.python_version()}; "
        f"{time.perf_counter() - t0:.0f} s in all"
    )
    lines = [head, "", "| part | what | value | unit |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['part']} | {r['what']} | {r['value']:.1f} | {r['unit']} |")
    by = {r["what"]: r["value"] for r in rows if r["part"] == "augmentation"}
    if len(by) == 2:
        (a, va), (b, vb) = by.items()
        lines.append(f"\nbatched augmentation: {a} is {va / vb:.2f}x {b}")
    table = "\n".join(lines)
    print(table)
    (out / "gpu.md").write_text(table + "\n")
    (out / "gpu.json").write_text(json.dumps({"device": device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
