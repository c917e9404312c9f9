"""Screen GAN settings on validation images of the training pool, never on the test set.

    python benchmarks/gan_screen.py MINUTES OUT '{"name": {TrainConfig fields}, ...}'
    python benchmarks/gan_screen.py 3 /tmp/s19 '{"standard": {}, "vision-aided":
        {"discriminator": "vision-aided"}}'

Each variant trains for MINUTES on the 1,000 bundled Fashion-MNIST training images; 1,000 images
of the full Fashion-MNIST *training* set that the bundled subset does not hold (100 a class)
are the validation images: domain-space KID, precision and recall (``domain_space.py``) and a
validation CAS (the CNN of ``generators.py`` trained on 1,000 synthetic images, tested on them).
How issue 19's variants were screened before the test-set benchmark (``generators.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from domain_space import domain_features, load_domain_cnn, precision_recall
from generators import cas

from augmentor.datasets import export_dataset, fashion_mnist, fashion_mnist_subset
from augmentor.generators import load_generator
from augmentor.generators.config import TrainConfig
from augmentor.generators.fit import train_generator
from transfer.images import LabelledImages
from transfer.quality import kid_fid_features


def main() -> None:
    minutes, out, variants = float(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    if not (out / "data").is_dir():
        export_dataset("fashion-mnist-subset", out / "data")
    tr, pool = fashion_mnist_subset("train"), fashion_mnist("train")
    seen = {im.tobytes() for im in tr.images}
    rest = np.array([i for i in range(len(pool.labels)) if pool.images[i].tobytes() not in seen])
    pick = np.concatenate([rest[pool.labels[rest] == c][:100] for c in range(10)])
    val = LabelledImages.from_arrays(pool.images[pick], pool.labels[pick], list(pool.classes))
    net = load_domain_cnn()
    d_val = domain_features(net, pool.images[pick])
    for name, kw in variants.items():
        cfg = TrainConfig("gan", minutes=minutes, steps_per_epoch=200, **kw)
        r = train_generator(out / "data", out / name, cfg, progress=False, overwrite=True)
        gen = load_generator(out / name / "generator")
        to_gen = torch.tensor([gen.label_of(n) for n in tr.classes])
        labels = torch.arange(1000) % 10
        syn = gen.sample(1000, labels=to_gen[labels], generator=torch.Generator().manual_seed(1))
        d_fake = domain_features(net, syn)
        q = kid_fid_features(d_val, d_fake, subsets=50)
        precision, recall = precision_recall(d_val, d_fake)
        synthetic = LabelledImages.from_arrays(syn[:, 0].numpy(), labels.numpy(), tr.classes)
        acc = cas(synthetic, val, out / f"cas-{name}")
        row = dict(steps=r.steps, domain_kid=q.kid, precision=precision, recall=recall, cas=acc)
        print(name, json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
