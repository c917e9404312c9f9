"""Which model should LP-FT keep when it has no validation images: its probe or the fine-tuned one?

    python benchmarks/lpft_guard.py [--draws 5] [--shots 20]
                                    [--arms handed:light,handed:noflip,fmnist:light]

Without a validation split, ``finetune`` can only guard against a collapse. Its guard ("old"
below, the one it keeps) keeps the probe when the fine-tuned model's accuracy on its (clean)
training images is more than 0.05 below the *probe's training accuracy*, which is 1.00 on a few
dozen images: in effect, fine-tuning must fit its own training images. Suspected of throwing
good fine-tuning away (issue 22's mirrored footwear), it was measured here against the
alternative ("new"): the probe's *cross-validated* accuracy (5 folds on the cached features) as
the reference. The alternative lost (BENCHMARKS.md) and was not adopted.

Per draw (``--shots`` images per class from the training pool; the datasets of
``benchmarks/tune.py``), one default LP-FT run at 64 px with the guard switched off, then both
models (the fine-tuned one and its probe) scored on the test images, and each guard's choice
read off the numbers it would have used. An arm is ``dataset:pipeline``: ``light`` (the
default preset) or ``noflip`` (``light`` without its horizontal flip, what ``augment tune``
picks for the mirrored footwear, where a flip turns one class into another). Printed: per
draw, and the paired difference new guard - old guard in test accuracy with its 95%
t-interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune import load

import transfer.finetuning as finetuning
from augmentor.seeding import global_seed, stream
from transfer.config import FinetuneConfig
from transfer.evaluate import evaluate_model, mean_interval
from transfer.features import FeatureCache
from transfer.preprocess import PreprocessModule
from transfer.probe import evaluate_cached, fit_linear_probe, load_probe_head
from transfer.splits import per_class_draws
from transfer.stages import device_name

MARGIN = finetuning.COLLAPSE_MARGIN


def cross_validated_accuracy(
    features: torch.Tensor, labels: np.ndarray, num_classes: int, folds: int = 5, seed: int = 0
) -> float | None:
    """The accuracy a linear probe reaches on images it was not fitted on: stratified
    ``folds``-fold cross-validation of :func:`fit_linear_probe` on cached (standardised)
    features. None when a class has fewer than 2 images."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    k = int(min(folds, counts[counts > 0].min()))
    if k < 2:
        return None
    rng = stream(seed, "split", len(labels))
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.flatnonzero(counts):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = np.arange(len(members)) % k
    x = features.float().cpu()
    correct = 0
    for f in range(k):
        fit, held = fold != f, fold == f
        mean, std = x[fit].mean(0), x[fit].std(0).clamp_min(1e-6)
        head = fit_linear_probe((x[fit] - mean) / std, torch.as_tensor(labels[fit]), num_classes)
        with torch.no_grad():
            pred = head((x[held] - mean) / std).argmax(1).numpy()
        correct += int((pred == labels[held]).sum())
    return correct / len(labels)


def pipeline_config(name: str) -> dict | None:
    if name == "light":
        return None
    from augmentor import ColorJitter, Pipeline, Rotate

    # the light preset without its horizontal flip
    ops = [Rotate(10, p=0.5), ColorJitter(brightness=0.1, contrast=0.1, p=0.5)]
    return Pipeline(ops).get_config()


def one_draw(name: str, arm: str, r: int, train, test, args) -> dict:
    out = Path(args.out) / f"{name}-{arm}" / f"draw-{r}"
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    data = train.join(test)
    tr, te = np.arange(len(train)), np.arange(len(train), len(data))
    pipeline = pipeline_config(arm)
    recipe = {} if pipeline is None else {"preset": None, "pipeline": pipeline}
    cfg = FinetuneConfig(image_size=args.image_size, seed=r, **recipe)
    finetuning.COLLAPSE_MARGIN = float("inf")  # the guard off: the fine-tuned model is kept
    try:
        run = finetuning.finetune(data, out / "run", cfg, train_index=tr, test_index=te,
                                  progress=False, export=False, overwrite=True)  # fmt: skip
    finally:
        finetuning.COLLAPSE_MARGIN = MARGIN
    pre = PreprocessModule(cfg.preprocessing(run.model.backbone))
    with global_seed(cfg.seed):  # the backbone the run started from, as the guard builds it
        probe, _ = finetuning.build_classifier(cfg, len(train.classes))
    assert load_probe_head(out / "run", probe)
    cache = FeatureCache(None)
    feats = cache.features(probe.backbone, pre, train, 1, device=device_name())[0]
    row = {
        "tuned_train": evaluate_model(run.model.to(device_name()), pre, train)["accuracy"],
        "tuned_test": evaluate_model(run.model, pre, test)["accuracy"],
        "probe_train": evaluate_cached(cache, probe, pre, train)["accuracy"],
        "probe_cv": cross_validated_accuracy(feats, train.labels, len(train.classes), seed=r),
        "probe_test": evaluate_cached(cache, probe, pre, test)["accuracy"],
    }
    old_keeps_probe = row["probe_train"] - row["tuned_train"] > MARGIN
    new_keeps_probe = row["probe_cv"] - row["tuned_train"] > MARGIN
    row["old"] = row["probe_test"] if old_keeps_probe else row["tuned_test"]
    row["new"] = row["probe_test"] if new_keeps_probe else row["tuned_test"]
    row["old_kept"] = "probe" if old_keeps_probe else "fine-tuned"
    row["new_kept"] = "probe" if new_keeps_probe else "fine-tuned"
    out.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(row, indent=2))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--arms", default="handed:light,handed:noflip,fmnist:light")
    ap.add_argument("--out", default="/tmp/lpft-guard")
    args = ap.parse_args()
    for spec in args.arms.split(","):
        name, arm = spec.split(":")
        pool = load(name, "train", None, 0)
        test = load(name, "test", args.test, 0)
        rows = []
        for r, idx in enumerate(
            per_class_draws(pool.labels, args.shots, args.draws, 0, pool.classes)
        ):
            rows.append(one_draw(name, arm, r, pool.subset(idx), test, args))
            print(spec, r, json.dumps(rows[-1]), flush=True)
        print(f"\n## {spec}: {args.shots}/class, {len(rows)} draws, {len(test)} test images")
        print("| draw | fine-tuned train | probe train | probe CV | fine-tuned test | probe test "
              "| old guard keeps | new guard keeps |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(rows):
            old, new = f"{r['old_kept']} ({r['old']:.3f})", f"{r['new_kept']} ({r['new']:.3f})"
            print(f"| {i} | {r['tuned_train']:.3f} | {r['probe_train']:.3f} | "
                  f"{r['probe_cv']:.3f} | {r['tuned_test']:.3f} | {r['probe_test']:.3f} | "
                  f"{old} | {new} |")  # fmt: skip
        diff = mean_interval([r["new"] - r["old"] for r in rows], None)
        print(f"\nnew guard - old guard: {diff.format_range()} points of test accuracy (95% CI)")
        # sensitivity: the new comparison without a margin (in-sample >= out-of-sample)
        zero = [
            (r["probe_test"] if r["probe_cv"] > r["tuned_train"] else r["tuned_test"]) - r["old"]
            for r in rows
        ]
        print(f"same, margin 0: {mean_interval(zero, None).format_range()} points")


if __name__ == "__main__":
    main()
