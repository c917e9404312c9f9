"""Does generative augmentation help a small-data classifier? Two arms, the control, and enough
repeats to tell.

    python benchmarks/generative_gain.py --split val  [--shots 20] [--repeats 5] ...  # choose
    python benchmarks/generative_gain.py --split test [--shots 20] [--repeats 15] ... # report

Few-shot Fashion-MNIST from the official training set (Debian's ``dataset-fashion-mnist``):
each repeat draws ``--shots`` training images per class. ``--split val`` tests every run on
2,000 validation images of the *training* pool that no draw may take (settings are chosen
there); ``--split test`` on the official 10,000 test images (figures are reported there).

Per repeat: a generator (``--generator``, default the VAE) trained on that repeat's images only;
``--per-image`` variations of each image (``--method``, ``--strength``) that pass the selective
filter fitted on the same images (``--band``; ``--no-filter`` for none). Per arm (``--arms``:
``scratch``, the small CNN from scratch, and ``pretrained``, EfficientNet-Lite0 LP-FT at
``--image-size``), four configurations with the same optimizer steps: real only; real +
classic (the ``light`` preset); real + classic + synthetic (``--mode extra`` with
``--ratio``, or ``--mode replace`` with ``--p``); duplicated reals (extra mode's control).

Printed and written to ``--out``/results.json: accuracy ± 95% CI per configuration, the paired
differences with their CI, half-width and the effect detectable at 80% power, every per-repeat
value, the filter's acceptance, the CAS of the accepted variations (the small CNN trained on
them alone, tested on the run's test images, over the same CNN trained on the real images) and
their near-duplicate rate against the training images (feature test or pixel copy, as
``augment quality`` counts them).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augmentor.datasets import fashion_mnist
from augmentor.seeding import stream
from transfer.comparison import compare
from transfer.finetuning import finetune
from transfer.generative import (
    ARMS,
    CONFIG_NAMES,
    CONTROL,
    RECIPE,
    SyntheticRecipe,
    arm_configs,
    make_synthetic,
)
from transfer.images import LabelledImages, load_folder
from transfer.quality import FeatureSpace, memorisation_features, pixel_copies

SYN, CLASSIC, REAL = CONFIG_NAMES[2], CONFIG_NAMES[1], CONFIG_NAMES[0]


def pools(split: str, seed: int = 0) -> tuple[LabelledImages, LabelledImages]:
    """(training pool, test images): the validation split is 2,000 images of the training
    set, held out of the pool."""
    train, test = fashion_mnist("train"), fashion_mnist("test")
    if split == "val":
        held = stream(seed, "split").choice(len(train.labels), 2000, replace=False)
        keep = np.setdiff1d(np.arange(len(train.labels)), held)
        pool = LabelledImages.from_arrays(train.images[keep], train.labels[keep], train.classes)
        tst = LabelledImages.from_arrays(train.images[held], train.labels[held], train.classes)
        return pool, tst
    pool = LabelledImages.from_arrays(train.images, train.labels, train.classes, "train")
    return pool, LabelledImages.from_arrays(test.images, test.labels, test.classes, "test")


CAS_CNN = replace(ARMS["scratch"], preset=None, steps=300, val_fraction=0.0)


def cas(train: LabelledImages, test: LabelledImages, out: Path) -> float:
    """Accuracy on ``test`` of the small CNN trained on ``train`` alone."""
    data = train.join(test) if train.classes == test.classes else None
    assert data is not None
    r = finetune(
        data, out, CAS_CNN, train_index=np.arange(len(train)),
        test_index=np.arange(len(train), len(data)), progress=False, export=False, overwrite=True,
    )  # fmt: skip
    assert r.test_metrics is not None
    return float(r.test_metrics["accuracy"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--split", choices=["val", "test"], default="val")
    p.add_argument("--shots", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--arms", nargs="+", default=["scratch"], choices=sorted(ARMS))
    p.add_argument("--image-size", type=int, default=64, help="pretrained arm input size")
    p.add_argument("--generator", default=RECIPE.generator)
    p.add_argument("--generator-steps", type=int, default=RECIPE.steps)
    p.add_argument("--per-image", type=int, default=RECIPE.per_image)
    p.add_argument("--method", default=RECIPE.method)
    p.add_argument("--strength", type=float, default=RECIPE.strength)
    p.add_argument("--band", type=float, nargs=2, default=list(RECIPE.band or (0.5, 1.0)))
    p.add_argument("--perceptual", type=float, default=RECIPE.perceptual)
    p.add_argument("--no-filter", action="store_true")
    p.add_argument("--mode", choices=["extra", "replace"], default="extra")
    p.add_argument("--ratio", type=float, default=1.0)
    p.add_argument("--p", type=float, default=0.5)
    p.add_argument("--no-cas", action="store_true")
    p.add_argument("--out", type=Path, default=Path("runs/bench-generative"))
    args = p.parse_args()
    t0 = time.perf_counter()
    pool, test = pools(args.split)
    recipe = SyntheticRecipe(
        generator=args.generator,
        steps=args.generator_steps,
        per_image=args.per_image,
        strength=args.strength,
        method=args.method,
        band=None if args.no_filter else (args.band[0], args.band[1]),
        perceptual=args.perceptual,
    )
    tag = f"{args.split}-{args.shots}"
    out = args.out / tag
    made: dict[int, dict] = {}

    def synthetic(r: int, part: LabelledImages) -> str:
        s = make_synthetic(part, out / "synthetic" / f"repeat-{r}", recipe, seed=r)
        made[r] = {"set": s, "part": part}
        return str(s.folder)

    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "recipe": asdict(recipe)}
    for arm in args.arms:
        base = replace(
            ARMS[arm],
            synthetic_mode=args.mode,
            synthetic_ratio=args.ratio,
            replace_p=args.p,
            image_size=args.image_size if arm == "pretrained" else None,
        )
        configs = arm_configs(base, args.shots * len(pool.classes), synthetic)
        contrasts = [(SYN, CLASSIC), (CLASSIC, REAL)]
        if CONTROL in configs:
            contrasts.insert(1, (SYN, CONTROL))

        def on_run(name: str, r: int, scores: dict, arm: str = arm) -> None:
            print(f"{arm} repeat {r}: {name}: {scores['accuracy']:.4f}", flush=True)

        cmp = compare(
            pool,
            configs,
            out / arm,
            repeats=args.repeats,
            seed=0,
            on_run=on_run,
            test=test,
            train_per_class=args.shots,
            contrasts=contrasts,
        )
        print(f"\n## {arm} arm, {args.shots}/class, {args.split}\n\n{cmp.table()}\n", flush=True)
        results[arm] = cmp.to_dict()
    # what the accepted synthetic images are worth on their own
    quality = []
    space = FeatureSpace(image_size=64) if made else None
    for r, m in sorted(made.items()):
        s, part = m["set"], m["part"]
        syn = load_folder(s.folder, classes=part.classes)
        row = {"repeat": r, "accepted": len(syn), "acceptance": s.acceptance}
        assert space is not None
        fr = torch.cat([space(torch.from_numpy(i.transpose(2, 0, 1))[None]) for i in part.images])
        ff = torch.cat([space(torch.from_numpy(i.transpose(2, 0, 1))[None]) for i in syn.images])

        def stack(images: list) -> torch.Tensor:
            return torch.stack([torch.from_numpy(i.transpose(2, 0, 1)) for i in images])

        copies = pixel_copies(stack(part.images), stack(syn.images))
        mem = memorisation_features(fr, ff, copies)
        row["near_duplicate_rate"] = mem["near_duplicate_rate"]
        row["pixel_copy_rate"] = mem["pixel_copy_rate"]
        if not args.no_cas:
            row["cas"] = cas(syn, test, out / "cas" / f"syn-{r}")
            row["cas_real"] = cas(part, test, out / "cas" / f"real-{r}")
            row["cas_ratio"] = row["cas"] / row["cas_real"]
        quality.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "acceptance"}), flush=True)
    if quality:
        results["synthetic"] = quality
        for key in ("cas_ratio", "near_duplicate_rate"):
            vals = [q[key] for q in quality if key in q]
            if vals:
                print(f"{key}: mean {np.mean(vals):.3f} (per repeat {[round(v, 3) for v in vals]})")
    results["seconds"] = time.perf_counter() - t0
    results["machine"] = f"{platform.machine()}, torch {torch.__version__}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"{results['seconds']:.0f} s -> {out / 'results.json'}")


if __name__ == "__main__":
    main()
