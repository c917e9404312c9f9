"""Train a small class-conditional VAE on the bundled data, then load and sample it as another
project would: three lines, no training code.

python examples/03_train_and_sample_a_generator.py [OUT]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from augmentor.datasets import export_dataset
from augmentor.generators.config import TrainConfig
from augmentor.generators.fit import train_generator


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    export_dataset("fashion-mnist-subset", out / "data")  # 10 classes x 100 images, 28x28
    config = TrainConfig("vae", steps=200, steps_per_epoch=100, base_channels=16, seed=0)
    result = train_generator(out / "data", out / "vae", config, progress=False)
    print(f"trained {result.steps} steps in {result.seconds:.0f} s; grids in {out / 'vae/samples'}")

    # --- what another project does with the saved directory ---
    from augmentor.generators import load_generator

    gen = load_generator(out / "vae" / "generator")
    boots = gen.sample(
        8, labels=[gen.label_of("ankle_boot")] * 8, generator=torch.Generator().manual_seed(0)
    )
    print(gen.kind, gen.class_names[:3], "...", tuple(boots.shape), boots.dtype)
    print("mean pixel of the boots:", float(boots.float().mean()), np.unique(boots).size > 10)


if __name__ == "__main__":
    main()
