"""Transfer learning on few-shot Fashion-MNIST, the feature cache, and fine-tuning throughput.

    python benchmarks/transfer_learning.py few-shot [--shots 10 50] [--seeds 5] [--image-size 128]
    python benchmarks/transfer_learning.py cache [--image-size 128]
    python benchmarks/transfer_learning.py throughput [--image-size 128 224] [--device cpu|cuda]

few-shot: N training images per class drawn with each seed from the official training set, tested
on the official 10,000-image test set (full Fashion-MNIST, read offline from Debian's
dataset-fashion-mnist). Three methods: (a) the course-notes CNN from scratch, (b) the linear probe
of EfficientNet-Lite0, (c) the default recipe (LP-FT) with classic augmentation. Mean test
accuracy with a 95% t-interval over the seeds (independent draws, so no correction is needed).

cache: 20 epochs of the linear head with the frozen-feature cache against recomputing the
features every epoch; time and test accuracy of each.

throughput: fine-tuning images/s (all layers training, batch 32) with the default recipe's data
path; on CUDA with bf16/16-bit mixed precision and channels_last.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augmentor.datasets import fashion_mnist
from transfer.config import FinetuneConfig
from transfer.evaluate import mean_interval
from transfer.finetuning import finetune
from transfer.images import LabelledImages

METHODS = {
    "(a) small CNN, from scratch": FinetuneConfig(
        backbone="small_cnn",
        pretrained=False,
        strategy="full",
        epochs=40,
        lr=1e-3,
        head_lr=1e-3,
        layer_decay=1.0,
        warmup_epochs=0.0,
        label_smoothing=0.0,
        dropout=0.0,
        preset=None,
        mixup=0.0,
        cutmix=0.0,
        patience=10,
        batch_size=32,
    ),
    "(b) linear probe": FinetuneConfig(strategy="linear", probe_epochs=40, preset=None),
    # the library's defaults: LP-FT, 30 probe epochs, 50 epochs at 1e-3 (top group; more epochs
    # where 50 make fewer than 180 steps, so 60 at 10/class), the light preset, MixUp 0.2 /
    # CutMix 1.0 on fine-tuning batches, the whole image (crop_pct 1.0, for (b) too), and no
    # validation split below 100 images per class;
    # see BENCHMARKS.md for the runs that chose them
    "(c) LP-FT + classic aug": FinetuneConfig(strategy="lp-ft", preset="light"),
}


def few_shot_data(shots: int, seed: int) -> tuple[LabelledImages, np.ndarray, np.ndarray]:
    train, test = fashion_mnist("train"), fashion_mnist("test")
    rng = np.random.default_rng([seed, shots])
    pick = np.concatenate(
        [
            rng.choice(np.flatnonzero(train.labels == c), shots, replace=False)
            for c in range(len(train.classes))
        ]
    )
    images = np.concatenate([train.images[pick], test.images])
    labels = np.concatenate([train.labels[pick], test.labels])
    data = LabelledImages.from_arrays(images, labels, train.classes, "fashion-mnist")
    return data, np.arange(len(pick)), np.arange(len(pick), len(labels))


def run_few_shot(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    results: dict = {}
    for shots in args.shots:
        for name, base in METHODS.items():
            if name[1] not in args.methods:
                continue
            scores = []
            for seed in range(args.seeds):
                data, tr, te = few_shot_data(shots, seed)
                size = None if base.backbone == "small_cnn" else args.image_size
                cfg = replace(
                    base, seed=seed, image_size=size, cache_dir=str(out / "feature_cache")
                )
                t = time.perf_counter()
                r = finetune(
                    data,
                    out / f"{shots}-shot" / name[:3].strip("()") / f"seed{seed}",
                    cfg,
                    train_index=tr,
                    test_index=te,
                    progress=False,
                    export=False,
                    overwrite=True,
                )
                acc = r.test_metrics["accuracy"]
                scores.append(acc)
                print(
                    f"{shots}/class {name} seed {seed}: test accuracy {acc:.4f} "
                    f"({time.perf_counter() - t:.0f} s)",
                    flush=True,
                )
            iv = mean_interval(scores)
            results[f"{shots}/{name}"] = {
                "shots": shots,
                "method": name,
                "scores": scores,
                "interval": iv.to_dict(),
            }
    print()
    print(f"| shots/class | method | test accuracy (%, mean ± 95% CI, {args.seeds} seeds) |")
    print("|---|---|---|")
    for r in results.values():
        iv = r["interval"]
        print(
            f"| {r['shots']} | {r['method']} | {iv['mean'] * 100:.1f} ± "
            f"{iv['half_width'] * 100:.1f} [{iv['low'] * 100:.1f}, {iv['high'] * 100:.1f}] |"
        )
    return results


def run_cache(args: argparse.Namespace) -> dict:
    """Head training, 20 epochs: cached features vs recomputing them every epoch."""
    from transfer.backbones import create_backbone
    from transfer.features import FeatureCache, extract_features
    from transfer.preprocess import PreprocessModule

    data, tr, te = few_shot_data(50, 0)
    train, test = data.subset(tr), data.subset(te[:2000])
    bb = create_backbone("efficientnet_lite0")
    pre = PreprocessModule(bb.preprocessing.scaled(args.image_size))
    y = torch.from_numpy(train.labels)
    f_test = extract_features(bb, pre, test.images)

    def train_head(features_for_epoch) -> tuple[float, float]:
        torch.manual_seed(0)
        head = torch.nn.Linear(bb.num_features, 10)
        opt = torch.optim.AdamW(head.parameters(), 3e-3, weight_decay=0.01)
        g = torch.Generator().manual_seed(0)
        t = time.perf_counter()
        for epoch in range(20):
            feats = features_for_epoch(epoch)
            for idx in torch.randperm(len(y), generator=g).split(32):
                loss = torch.nn.functional.cross_entropy(head(feats[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        seconds = time.perf_counter() - t
        with torch.no_grad():
            acc = float((head(f_test).argmax(1).numpy() == test.labels).mean())
        return seconds, acc

    cache = FeatureCache(None)
    t = time.perf_counter()
    cached = cache.features(bb, pre, train)[0]
    extract = time.perf_counter() - t
    s_cached, acc_cached = train_head(lambda e: cached)
    s_cached += extract
    s_recompute, acc_recompute = train_head(lambda e: extract_features(bb, pre, train.images))
    print("| head training, 20 epochs, 500 images | seconds | test accuracy (2,000 images) |")
    print("|---|---|---|")
    print(f"| recompute features every epoch | {s_recompute:.1f} | {acc_recompute:.4f} |")
    print(
        f"| feature cache (incl. one extraction, {extract:.1f} s) | {s_cached:.1f} | "
        f"{acc_cached:.4f} |"
    )
    print(f"speed-up: {s_recompute / s_cached:.1f}x")
    return {
        "recompute_s": s_recompute,
        "cached_s": s_cached,
        "extract_s": extract,
        "acc_recompute": acc_recompute,
        "acc_cached": acc_cached,
        "speedup": s_recompute / s_cached,
    }


def run_throughput(args: argparse.Namespace) -> dict:
    """Images/s of full fine-tuning (epochs 2, the second timed by the module's logger)."""
    from augmentor.datasets import fashion_mnist_subset

    ds = fashion_mnist_subset("train")
    data = LabelledImages.from_arrays(ds.images[:320], ds.labels[:320], ds.classes)
    out = {}
    print("| image size | device | precision | fine-tuning images/s |")
    print("|---|---|---|---|")
    for size in args.image_size_list:
        cfg = FinetuneConfig(
            strategy="full",
            epochs=2,
            image_size=size,
            patience=0,
            val_fraction=0.1,
            num_workers=args.workers,
        )
        r = finetune(
            data,
            Path(args.out) / f"throughput-{size}",
            cfg,
            progress=False,
            export=False,
            overwrite=True,
        )
        dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        prec = "mixed" if torch.cuda.is_available() else "32-true"
        print(f"| {size} | {dev} | {prec} | {r.train_images_per_s:.1f} |", flush=True)
        out[size] = r.train_images_per_s
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["few-shot", "cache", "throughput"])
    p.add_argument("--shots", type=int, nargs="+", default=[10, 50])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument(
        "--methods", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"], help="few-shot"
    )
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--image-size-list", type=int, nargs="+", default=[128, 224])
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", default="runs/bench-transfer")
    args = p.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, cuda {torch.cuda.is_available()}"
    )
    t = time.perf_counter()
    fn = {"few-shot": run_few_shot, "cache": run_cache, "throughput": run_throughput}[args.what]
    res = fn(args)
    print(f"total {time.perf_counter() - t:.0f} s")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = args.what if args.what != "few-shot" else f"few-shot-{''.join(args.methods)}"
    (Path(args.out) / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
