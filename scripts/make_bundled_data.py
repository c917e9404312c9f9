"""Cut the bundled Fashion-MNIST subset from Debian's dataset-fashion-mnist (run once; output
committed as augmentor/data/fashion_mnist_subset.npz).

    python scripts/make_bundled_data.py [--per-class 100] [--seed 0]
"""

import argparse

import numpy as np

from augmentor.datasets import BUNDLED, fashion_mnist


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    arrays = {}
    for split in ("train", "test"):
        ds = fashion_mnist(split)
        idx = np.concatenate(
            [
                np.sort(rng.choice(np.flatnonzero(ds.labels == c), args.per_class, replace=False))
                for c in range(len(ds.classes))
            ]
        )
        arrays[f"{split}_images"] = ds.images[idx]
        arrays[f"{split}_labels"] = ds.labels[idx].astype(np.uint8)
        arrays[f"{split}_source_index"] = idx.astype(np.int32)  # index in the official split
    np.savez_compressed(BUNDLED, **arrays)
    print(f"wrote {BUNDLED} ({BUNDLED.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
