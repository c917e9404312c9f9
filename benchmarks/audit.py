"""How well does `augment audit` find planted faults? And what does it find in real data?

    python benchmarks/audit.py                      # planted faults, recall and precision
    python benchmarks/audit.py --calibrate          # the similarity of planted vs distinct pairs
    python benchmarks/audit.py --full               # the untouched full Fashion-MNIST

Planted (seeded) into the bundled Fashion-MNIST subset's training folder (1,000 images): 20
exact duplicates (a copy under a new name), 20 near-duplicates (a 1-pixel crop of one side
resized back, a downscale to 85-95% and back, or a JPEG copy at quality 70-90), 10 train/test
leaks (a test image copied into its class's training folder) and 5% of the training labels
flipped (moved to another class's folder). The test folder is the subset's 1,000 test images.

Scores: duplicates and leaks, recall (planted copies found in a cluster with their original)
and precision (of the redundant images and leaks reported, the planted share); flipped
labels, the share of them among the first 2 x (number flipped) label suspects.

``--calibrate`` prints, for three training pools (the bundled subset, LFW, textures; never a
test split) and two seeds of 60 planted near-duplicates each, the share of planted copies each
test finds beside the share of real images that have a distinct neighbour passing the same
test: how the thresholds in transfer/audit.py were chosen.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augmentor.io import load_image, save_image


def near_copy(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A near-duplicate of ``image`` and how it was made (seeded): a 1-pixel crop of one
    side resized back, a downscale to 85-95% and back, or a JPEG copy at quality 70-90."""
    from PIL import Image

    h, w = image.shape[:2]
    im = Image.fromarray(image if image.shape[2] == 3 else image[:, :, 0])
    kind = ("crop", "resize", "jpeg")[int(rng.integers(3))]
    if kind == "crop":
        box = [(1, 0, w, h), (0, 1, w, h), (0, 0, w - 1, h), (0, 0, w, h - 1)]
        im = im.crop(box[int(rng.integers(4))]).resize((w, h), Image.Resampling.BILINEAR)
    elif kind == "resize":
        s = float(rng.uniform(0.85, 0.95))
        small = (max(1, round(w * s)), max(1, round(h * s)))
        im = im.resize(small, Image.Resampling.BILINEAR).resize((w, h), Image.Resampling.BILINEAR)
    else:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(70, 91)))
        im = Image.open(io.BytesIO(buf.getvalue()))
    out = np.asarray(im)
    return (out if out.ndim == 3 else out[:, :, None]), kind


def plant(train: Path, test: Path, dst: Path, seed: int = 0) -> dict:
    """Copy ``train`` to ``dst`` with the faults planted; returns what was planted."""
    rng = np.random.default_rng([seed, 2024])
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(train, dst)
    classes = sorted(p.name for p in dst.iterdir() if p.is_dir())
    files = sorted(dst.rglob("*.png"))
    order = rng.permutation(len(files))
    exact_src = [files[i] for i in order[:20]]
    near_src = [files[i] for i in order[20:40]]
    flip_src = [files[i] for i in order[40 : 40 + len(files) // 20]]
    planted: dict = {"exact": [], "near": [], "leak": [], "flip": []}
    for k, src in enumerate(exact_src):
        copy = src.parent / f"dup-exact-{k}.png"
        shutil.copy2(src, copy)
        planted["exact"].append([str(src), str(copy)])
    for k, src in enumerate(near_src):
        copy = src.parent / f"dup-near-{k}.png"
        save_image(copy, near_copy(load_image(src), rng)[0])
        planted["near"].append([str(src), str(copy)])
    tests = sorted(test.rglob("*.png"))
    for k, i in enumerate(rng.choice(len(tests), 10, replace=False)):
        src = tests[int(i)]
        copy = dst / src.parent.name / f"leak-{k}.png"
        shutil.copy2(src, copy)
        planted["leak"].append([str(src), str(copy)])
    for src in flip_src:
        other = [c for c in classes if c != src.parent.name]
        new = dst / other[int(rng.integers(len(other)))] / f"flip-{src.name}"
        shutil.move(src, new)
        planted["flip"].append(str(new))
    return planted


def score(result, planted: dict) -> dict:
    """Recall and precision per kind of fault (module docstring)."""
    cluster_of = {}
    for n, cl in enumerate(result.clusters):
        for m in cl["members"]:
            cluster_of[str(Path(m["path"]).resolve())] = n

    def same(a: str, b: str) -> bool:
        ca, cb = cluster_of.get(str(Path(a).resolve())), cluster_of.get(str(Path(b).resolve()))
        return ca is not None and ca == cb

    out = {}
    for kind in ("exact", "near"):
        found = sum(same(a, b) for a, b in planted[kind])
        out[f"{kind}_recall"] = found / len(planted[kind])
    dup_pairs = planted["exact"] + planted["near"]
    planted_copies = {str(Path(b).resolve()) for _, b in dup_pairs}
    reported = 0
    true = 0
    for cl in result.duplicates:
        data = [m for m in cl["members"] if m["split"] == "data"]
        reported += len(data) - 1
        true += min(
            len(data) - 1, sum(str(Path(m["path"]).resolve()) in planted_copies for m in data)
        )
    out["duplicates_recall"] = sum(same(a, b) for a, b in dup_pairs) / len(dup_pairs)
    out["duplicates_precision"] = true / reported if reported else 1.0
    out["duplicates_reported"] = reported
    leaks_found = sum(same(a, b) for a, b in planted["leak"])
    out["leak_recall"] = leaks_found / len(planted["leak"])
    leak_copies = {str(Path(b).resolve()) for _, b in planted["leak"]}
    reported_leaks = result.leaks
    true_leaks = sum(
        any(str(Path(m["path"]).resolve()) in leak_copies for m in cl["members"])
        for cl in reported_leaks
    )
    out["leak_precision"] = true_leaks / len(reported_leaks) if reported_leaks else 1.0
    out["leaks_reported"] = len(reported_leaks)
    flips = {str(Path(p).resolve()) for p in planted["flip"]}
    top = [str(Path(s["path"]).resolve()) for s in result.suspects[: 2 * len(flips)]]
    out["flip_in_top_2n"] = sum(p in flips for p in top) / len(flips)
    out["flipped"] = len(flips)
    out["suspects"] = len(result.suspects)
    return out


def calibrate(folders: dict[str, Path], image_size: int | None, seeds=(7, 8)) -> None:
    """Planted near-duplicates (60 per seed) against each real image's nearest other image:
    the thumbnail ratio test and the feature cosine, at several settings."""
    import torch

    from transfer.backbones import create_backbone
    from transfer.config import FinetuneConfig
    from transfer.copies import NEAR_MIN_COSINE, thumbnails
    from transfer.features import FeatureCache
    from transfer.images import LabelledImages, load_folder
    from transfer.preprocess import PreprocessModule

    net = create_backbone("efficientnet_lite0")
    pre = PreprocessModule(FinetuneConfig(image_size=image_size).preprocessing(net))
    print("| data | seed | test | planted found | real images with a neighbour that close |")
    print("|---|---|---|---|---|")
    for name, folder in folders.items():
        real = load_folder(folder)
        n = len(real)
        for seed in seeds:
            rng = np.random.default_rng([0, seed])
            pick = rng.choice(n, min(60, n), replace=False)
            copies = [near_copy(real.images[i], rng)[0] for i in pick]
            both = LabelledImages(
                real.images + copies,
                np.concatenate([real.labels, real.labels[pick]]),
                real.classes,
                real.sources + [f"copy-{i}" for i in pick],
            )
            rows = torch.arange(len(pick))
            p = torch.as_tensor(pick)
            # the ratio test: nearest / second nearest distance (originals and copies apart)
            u = thumbnails(both.images)
            d = (1 - u @ u.T).clamp_min(0)
            d.fill_diagonal_(float("inf"))
            dn = d[:n, :n].topk(2, dim=1, largest=False).values
            nat_ratio, nat_cos = (dn[:, 0] / dn[:, 1].clamp_min(1e-9)), 1 - dn[:, 0]
            dpl = d[n:][rows, p]
            other = d[n:, :n].clone()
            other[rows, p] = float("inf")
            pl_ratio, pl_cos = dpl / other.min(1).values.clamp_min(1e-9), 1 - dpl
            for t in (0.1, 0.2, 0.3):
                found = ((pl_ratio <= t) & (pl_cos >= NEAR_MIN_COSINE)).float().mean()
                false = ((nat_ratio <= t) & (nat_cos >= NEAR_MIN_COSINE)).float().mean()
                print(f"| {name} | {seed} | thumbnail ratio <= {t} | {found:.2f} | {false:.4f} |")
            f = torch.nn.functional.normalize(FeatureCache(None).features(net, pre, both)[0], dim=1)
            planted_cos = (f[n:] * f[p]).sum(1)
            sim = f[:n] @ f[:n].T
            sim.fill_diagonal_(-2)
            nn_cos = sim.max(1).values
            for t in (0.9, 0.95, 0.97):
                found, false = (planted_cos >= t).float().mean(), (nn_cos >= t).float().mean()
                print(
                    f"| {name} | {seed} | feature cosine >= {t} ({pre.input_size} px) | "
                    f"{found:.2f} | {false:.4f} |"
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calibrate", action="store_true")
    p.add_argument("--full", action="store_true", help="audit the full Fashion-MNIST")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-audit"))
    args = p.parse_args()
    from augmentor.datasets import export_dataset
    from transfer.audit import audit

    data = args.out / "data"
    for name, split in (("fashion-mnist-subset", "train"), ("fashion-mnist-subset", "test")):
        if not (data / f"{name}-{split}").is_dir():
            export_dataset(name, data / f"{name}-{split}", split)
    if args.calibrate:
        for name in ("lfw", "textures"):
            if not (data / f"{name}-train").is_dir():
                export_dataset(name, data / f"{name}-train", "train")
        calibrate(
            {"fashion-mnist-subset": data / "fashion-mnist-subset-train",
             "lfw": data / "lfw-train", "textures": data / "textures-train"},
            args.image_size,
        )  # fmt: skip
        return
    if args.full:
        for split in ("train", "test"):
            if not (data / f"fashion-mnist-{split}").is_dir():
                export_dataset("fashion-mnist", data / f"fashion-mnist-{split}", split)
        t = time.perf_counter()
        r = audit(
            data / "fashion-mnist-train",
            data / "fashion-mnist-test",
            image_size=args.image_size,
            cache_dir=args.out / "cache",
        )
        seconds = time.perf_counter() - t
        print(r.summary().split("\n  ")[0])
        print(json.dumps(r.counts()))
        exact = sum(any(p["kind"] == "exact" for p in cl["pairs"]) for cl in r.clusters)
        print(f"clusters with an exact pair: {exact}")
        n = r.facts["images"] + r.facts.get("test_images", 0)
        print(f"{seconds:.0f} s, {seconds / n * 1000:.1f} s per 1,000 images")
        return
    rows = []
    for seed in args.seeds:
        dst = args.out / f"planted-{seed}"
        planted = plant(data / "fashion-mnist-subset-train", data / "fashion-mnist-subset-test",
                        dst, seed)  # fmt: skip
        t = time.perf_counter()
        r = audit(dst, data / "fashion-mnist-subset-test", image_size=args.image_size,
                  cache_dir=args.out / "cache", seed=seed)  # fmt: skip
        s = score(r, planted)
        s["seconds"] = time.perf_counter() - t
        s["seed"] = seed
        rows.append(s)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}))
    keys = ["duplicates_recall", "duplicates_precision", "leak_recall", "leak_precision",
            "flip_in_top_2n"]  # fmt: skip
    print("\n| measure | target | " + " | ".join(f"seed {r['seed']}" for r in rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    targets = {
        "duplicates_recall": ">= 0.95",
        "duplicates_precision": ">= 0.9",
        "leak_recall": ">= 0.95",
        "leak_precision": ">= 0.9",
        "flip_in_top_2n": ">= 0.6",
    }
    for k in keys:
        print(f"| {k} | {targets[k]} | " + " | ".join(f"{r[k]:.3f}" for r in rows) + " |")


if __name__ == "__main__":
    main()
