"""Does `augment tune` pick better augmentation than the default preset, on images it never saw?
And what do flip TTA and the fitted temperature do to accuracy and calibration?

    python benchmarks/tune.py [--draws 10] [--shots 20] [--image-size 64] [--minutes 10]
                              [--datasets fmnist,handed] [--out /tmp/tune-bench]

Two datasets, each a few-shot draw from a training pool, tested on a separate test set:

* ``fmnist``: Fashion-MNIST (the Debian package), ``--shots`` images per class drawn from the
  60,000 training images, tested on ``--test`` images of the official test set;
* ``handed``: Fashion-MNIST's footwear (sandal, sneaker, ankle boot, all drawn toe-left), each
  image either kept or mirrored into a class of its own ("sneaker-mirrored"): six classes
  where the default preset's horizontal flip turns one class into another. Same pools.

Per draw: ``tune`` runs on the drawn images only (screening, no confirmation runs), then
two fine-tuning runs (the default recipe, lp-ft at ``--image-size``) train on the same draw:
the default preset ``light`` and tune's pipeline (when tune keeps the default, the two runs are
one and the same seeded run). Both are tested on the same test images. With ``--calibrate``,
the tuned run of ``fmnist`` also fits its temperature out of fold (``calibration="folds"``)
and is scored with and without flip TTA. Printed: per-draw values, paired differences with 95%
t-intervals over the draws. Each finished draw is kept in ``--out`` and reused.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augmentor.datasets import fashion_mnist
from augmentor.seeding import stream
from transfer.calibration import apply_temperature, expected_calibration_error, served_view_probs
from transfer.config import FinetuneConfig, TuneConfig
from transfer.evaluate import mean_interval
from transfer.finetuning import finetune
from transfer.images import LabelledImages
from transfer.preprocess import PreprocessModule
from transfer.splits import per_class_draws
from transfer.tuning import DEFAULT, tune

FOOTWEAR = (5, 7, 9)


def load(name: str, split: str, n: int | None, seed: int) -> LabelledImages:
    ds = fashion_mnist(split)
    if name == "fmnist":
        images, labels, classes = ds.images, ds.labels, list(ds.classes)
    else:
        keep = np.flatnonzero(np.isin(ds.labels, FOOTWEAR))
        mirror = np.arange(len(keep)) % 2 == 1
        images = ds.images[keep].copy()
        images[mirror] = images[mirror][:, :, ::-1]
        labels = np.array([2 * FOOTWEAR.index(int(y)) for y in ds.labels[keep]]) + mirror
        classes = [f"{ds.classes[c]}{s}" for c in FOOTWEAR for s in ("", "-mirrored")]
    if n is not None and n < len(labels):
        pick = np.sort(stream(seed, "draw", 999).permutation(len(labels))[:n])
        images, labels = images[pick], labels[pick]
    return LabelledImages.from_arrays(np.ascontiguousarray(images), labels, classes)


def one_draw(name: str, r: int, train: LabelledImages, test: LabelledImages, args) -> dict:
    out = Path(args.out) / name / f"draw-{r}"
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    tuned = tune(
        train, out / "tune",
        TuneConfig(minutes=args.minutes, image_size=args.image_size, confirm_steps=0, seed=r),
        progress=False,
    )  # fmt: skip
    t_tune = time.perf_counter() - t0
    data = train.join(test)
    tr, te = np.arange(len(train)), np.arange(len(train), len(data))
    base = FinetuneConfig(image_size=args.image_size, seed=r, val_fraction=args.val_fraction)
    default = finetune(data, out / "default", base, train_index=tr, test_index=te,
                       progress=False, export=False, overwrite=True)  # fmt: skip
    calibrate = "folds" if name == "fmnist" and args.calibrate else "auto"
    cfg = FinetuneConfig(
        image_size=args.image_size, seed=r, preset=None, pipeline=tuned.pipeline,
        calibration=calibrate, val_fraction=args.val_fraction,
    )  # fmt: skip
    if tuned.winner == DEFAULT and not args.calibrate:
        run = default  # the very same recipe and seed: the same run (fine-tuning is seeded)
    else:
        run = finetune(data, out / "tuned", cfg, train_index=tr, test_index=te,
                       progress=False, export=False, overwrite=True)  # fmt: skip
    assert default.test_metrics is not None and run.test_metrics is not None
    row = {
        "winner": tuned.winner,
        "distinguishable": tuned.distinguishable,
        "tune_seconds": t_tune,
        "default": default.test_metrics["accuracy"],
        "tuned": run.test_metrics["accuracy"],
    }
    if calibrate == "folds" and run.calibration is not None and run.test_probs is not None:
        t = run.calibration.temperature
        raw = run.test_probs
        y = test.labels
        pre = PreprocessModule(cfg.preprocessing(run.model.backbone))
        flip = served_view_probs(run.model, pre, test, "flip")
        row.update(
            temperature=t,
            ece_before=expected_calibration_error(raw, y),
            ece_after=expected_calibration_error(apply_temperature(raw, t), y),
            flip_accuracy=float((flip.argmax(1) == y).mean()),
            flip_ece_after=expected_calibration_error(apply_temperature(flip, t), y),
        )
    out.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(row, indent=2))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--datasets", default="fmnist,handed")
    ap.add_argument("--out", default="/tmp/tune-bench")
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="the fine-tuning runs' validation split (None: finetune's default, none below 100 "
        "images a class; then LP-FT keeps its probe when fine-tuning loses more than 5 points "
        "of training accuracy)",
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="fmnist's tuned run also fits its temperature out of fold (3 more runs a draw) "
        "and is scored with flip TTA",
    )
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{__import__('torch').get_num_threads()}")  # fmt: skip
    for name in args.datasets.split(","):
        pool = load(name, "train", None, 0)
        test = load(name, "test", args.test, 0)
        draws = per_class_draws(pool.labels, args.shots, args.draws, 0, pool.classes)
        rows = []
        for r, idx in enumerate(draws):
            row = one_draw(name, r, pool.subset(idx), test, args)
            rows.append(row)
            print(f"{name} draw {r}: " + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
            ), flush=True)  # fmt: skip
        report(name, rows, len(pool.classes), args, len(test))


def report(name: str, rows: list[dict], k: int, args, n_test: int) -> None:
    diff = mean_interval([r["tuned"] - r["default"] for r in rows], None)
    print(f"\n## {name}: {args.shots}/class x {k} classes, {len(rows)} draws, {n_test} test "
          f"images, lp-ft at {args.image_size} px")  # fmt: skip
    print("| draw | tune's winner | default (%) | tuned (%) | tuned - default |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(rows):
        print(f"| {i} | {r['winner']}{'' if r['distinguishable'] else ' (= default)'} | "
              f"{r['default'] * 100:.1f} | {r['tuned'] * 100:.1f} | "
              f"{(r['tuned'] - r['default']) * 100:+.1f} |")  # fmt: skip
    print(f"\ntuned - default: {diff.format_range()} points (95% t-interval over draws); "
          f"tune took {np.mean([r['tune_seconds'] for r in rows]):.0f} s a draw")  # fmt: skip
    if "ece_before" in rows[0]:
        tta = mean_interval([r["flip_accuracy"] - r["tuned"] for r in rows], None)
        eb = [r["ece_before"] for r in rows]
        ea = [r["ece_after"] for r in rows]
        ratio = mean_interval([a / b for a, b in zip(ea, eb)], None)
        temps = ", ".join(f"{r['temperature']:.2f}" for r in rows)
        print(f"flip TTA - none (accuracy): {tta.format_range()} points")
        print(f"ECE before temperature {np.mean(eb):.4f}, after {np.mean(ea):.4f} "
              f"(after/before {ratio.mean:.2f} [{ratio.low:.2f}, {ratio.high:.2f}]); "
              f"with flip TTA after {np.mean([r['flip_ece_after'] for r in rows]):.4f}; "
              f"temperatures {temps}")  # fmt: skip


if __name__ == "__main__":
    main()
