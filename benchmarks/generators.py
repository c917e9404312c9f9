"""Generators on the bundled Fashion-MNIST subset with the same wall-clock budget each.

    python benchmarks/generators.py [--minutes 10] [--kinds gan gan-no-diffaugment vae diffusion]
    python benchmarks/generators.py --minutes 5 --kinds gan gan-projected   # issue 19

For each generator: train for ``--minutes`` on the 1,000 bundled training images (10 classes,
28x28), then report KID ± std and FID of 500 samples against the 1,000 bundled test images in
EfficientNet-Lite0 feature space (offline), samples/s at generation, the near-duplicate rate
against the training images, and the Classification Accuracy Score: the course-notes CNN trained
on 100 synthetic images per class alone, tested on the 1,000 real test images, against the same
CNN trained on the 1,000 real training images. Sample grids go to ``docs/samples-<kind>.png``
(unless ``--no-grids``).

Measured where no discriminator looks (``benchmarks/domain_space.py``): KID in the 128-d features
of a small CNN trained on the full 60,000-image Fashion-MNIST training set, and the samples'
precision and recall (k = 3) there, so that fidelity bought with lost diversity shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain_space import domain_features, load_domain_cnn, precision_recall
from transfer_learning import METHODS

from augmentor.datasets import export_dataset, fashion_mnist_subset
from augmentor.generators import load_generator
from augmentor.generators.callbacks import write_grid
from augmentor.generators.config import TrainConfig
from augmentor.generators.fit import train_generator
from transfer.finetuning import finetune
from transfer.images import LabelledImages
from transfer.quality import FeatureSpace, kid_fid_features, memorisation_features

KINDS = {
    "gan": TrainConfig("gan"),
    "gan-no-diffaugment": TrainConfig("gan", diffaugment=False),
    "gan-no-class-bn": TrainConfig("gan", class_bn=False),
    "gan-projected": TrainConfig("gan", discriminator="projected"),
    "vae": TrainConfig("vae"),
    "diffusion": TrainConfig("diffusion"),
}
# the course-notes CNN of the transfer benchmark, shorter and on all its images (no validation)
CNN = replace(METHODS["(a) small CNN, from scratch"], epochs=15, val_fraction=0.0)


def cas(train: LabelledImages, test: LabelledImages, out: Path) -> float:
    data = LabelledImages(
        train.images + test.images,
        np.concatenate([train.labels, test.labels]),
        train.classes,
        train.sources + test.sources,
    )
    r = finetune(
        data,
        out,
        CNN,
        train_index=np.arange(len(train)),
        test_index=np.arange(len(train), len(data)),
        overwrite=True,
        progress=False,
        export=False,
    )
    return float(r.test_metrics["accuracy"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--kinds", nargs="+", default=list(KINDS))
    p.add_argument("--out", default="runs/bench-generators")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--reuse", action="store_true", help="evaluate generators already trained")
    p.add_argument("--no-grids", action="store_true", help="leave docs/samples-*.png alone")
    args = p.parse_args()
    out = Path(args.out)
    if not (out / "data").is_dir():
        export_dataset("fashion-mnist-subset", out / "data")
    tr, te = fashion_mnist_subset("train"), fashion_mnist_subset("test")
    real_train = torch.from_numpy(tr.images[:, None].copy())
    real_test = torch.from_numpy(te.images[:, None].copy())
    test = LabelledImages.from_arrays(te.images, te.labels, te.classes, "test")
    train = LabelledImages.from_arrays(tr.images, tr.labels, tr.classes, "train")
    space = FeatureSpace(image_size=64)
    f_train, f_test = space(real_train), space(real_test)  # embedded once for all generators
    domain = load_domain_cnn()
    d_test = domain_features(domain, real_test)
    cas_real = cas(train, test, out / "cas-real")
    rows = {}
    for kind in args.kinds:
        cfg = replace(KINDS[kind], minutes=args.minutes, steps=None, steps_per_epoch=200)
        if args.reuse and (out / kind / "generator").is_dir():
            info = json.loads((out / kind / "train.json").read_text())
            steps, seconds = info["steps"], info["seconds"]
        else:
            r = train_generator(out / "data", out / kind, cfg, progress=False)
            steps, seconds = r.steps, r.seconds
        gen = load_generator(out / kind / "generator")
        labels = torch.arange(args.samples) % 10
        t = time.perf_counter()
        fake = gen.sample(args.samples, labels=labels, generator=torch.Generator().manual_seed(0))
        sps = args.samples / (time.perf_counter() - t)
        f_fake = space(fake)
        q = kid_fid_features(f_test, f_fake, subsets=50)
        d_fake = domain_features(domain, fake)
        dq = kid_fid_features(d_test, d_fake, subsets=50)
        precision, recall = precision_recall(d_test[: args.samples], d_fake)
        mem = memorisation_features(f_train, f_fake)
        # the generator numbers classes by folder name (sorted); map them to the dataset's order
        syn_labels = torch.arange(1000) % 10
        to_gen = torch.tensor([gen.label_of(name) for name in tr.classes])
        syn = gen.sample(
            1000, labels=to_gen[syn_labels], generator=torch.Generator().manual_seed(1)
        )
        synthetic = LabelledImages.from_arrays(syn[:, 0].numpy(), syn_labels.numpy(), tr.classes)
        acc = cas(synthetic, test, out / f"cas-{kind}")
        if not args.no_grids:
            Path("docs").mkdir(exist_ok=True)
            write_grid(Path("docs") / f"samples-{kind}.png", gen.model, 10, 8)
        rows[kind] = {
            "steps": steps,
            "seconds": seconds,
            "ms_per_step": 1000 * seconds / max(steps, 1),
            "kid": q.kid,
            "kid_std": q.kid_std,
            "fid": q.fid,
            "domain_kid": dq.kid,
            "domain_kid_std": dq.kid_std,
            "precision": precision,
            "recall": recall,
            "samples_per_s": sps,
            "cas": acc,
            "cas_ratio": acc / cas_real,
            "near_duplicates": mem["near_duplicate_rate"],
        }
        print(kind, json.dumps(rows[kind]), flush=True)
    print()
    print(
        f"| generator | steps in {args.minutes:g} min | ms/step | KID ± std | FID | "
        "domain KID ± std | precision | recall | samples/s | near-duplicates | CAS | CAS / real |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, r in rows.items():
        print(
            f"| {kind} | {r['steps']} | {r['ms_per_step']:.0f} | {r['kid']:.3f} ± "
            f"{r['kid_std']:.3f} | {r['fid']:.1f} | {r['domain_kid']:.3f} ± "
            f"{r['domain_kid_std']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['samples_per_s']:.0f} | {r['near_duplicates']:.1%} | {r['cas']:.3f} | "
            f"{r['cas_ratio']:.2f} |"
        )
    print(f"real-data CNN (1,000 images): test accuracy {cas_real:.3f}")
    (out / "results.json").write_text(json.dumps({"rows": rows, "cas_real": cas_real}, indent=2))


if __name__ == "__main__":
    main()
