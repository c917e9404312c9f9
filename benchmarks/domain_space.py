"""A feature space no generator trains against: a small CNN fitted to the full Fashion-MNIST.

    python benchmarks/domain_space.py            # train the asset (about 3 min on 2 CPUs)

An ImageNet-feature discriminator can lower an ImageNet-feature KID without better images
(Kynkaenniemi et al., ICLR 2023), so the generator benchmark also measures in this space: the
128-d penultimate features of a small CNN trained on the 60,000 official *training* images
(never the test images; the benchmark's real test images are the bundled subset's test split).
The weights are a benchmark asset (``benchmarks/assets/fmnist-domain-cnn.safetensors``), used
by ``benchmarks/generators.py`` and never by training.

``precision_recall`` is Kynkaenniemi et al. (NeurIPS 2019): each set's k-NN balls (k = 3) as its
manifold; precision = share of generated samples inside the real manifold, recall = share of real
samples inside the generated one. Written here: torchmetrics has no such metric.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ASSET = Path(__file__).resolve().parent / "assets" / "fmnist-domain-cnn.safetensors"


class DomainCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _prep(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(images)
    x = x[:, None] if x.ndim == 3 else x
    return (x.float() / 255.0 - 0.286) / 0.353


def load_domain_cnn() -> DomainCNN:
    from safetensors.torch import load_file

    if not ASSET.is_file():
        raise SystemExit(f"{ASSET} is missing: run python benchmarks/domain_space.py first")
    net = DomainCNN()
    net.load_state_dict(load_file(str(ASSET)))
    return net.eval()


@torch.no_grad()
def domain_features(net: DomainCNN, images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """128-d features of uint8 28x28 grey images ``(N, 28, 28)`` or ``(N, 1, 28, 28)``."""
    x = _prep(images)
    return torch.cat([net.features(x[i : i + 500]) for i in range(0, len(x), 500)])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019) of ``fake`` against ``real``."""

    def radii(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x, x)
        return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0

    r_real, r_fake = radii(real), radii(fake)
    d = torch.cdist(fake, real)  # (fake, real)
    precision = (d <= r_real[None, :]).any(1).float().mean()
    recall = (d.T <= r_fake[None, :]).any(1).float().mean()
    return float(precision), float(recall)


def main() -> None:
    from safetensors.torch import save_file

    from augmentor.datasets import fashion_mnist
    from augmentor.seeding import global_seed

    train = fashion_mnist("train")
    x, y = _prep(train.images), torch.as_tensor(train.labels).long()
    with global_seed(0, "init"):
        net = DomainCNN()
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for epoch in range(3):
        net.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 256):
            idx = order[i : i + 256]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)")
    net.eval()
    test = fashion_mnist("test")  # reported only: the asset is never chosen on it
    with torch.no_grad():
        chunks = [_prep(test.images[i : i + 1000]) for i in range(0, len(test.images), 1000)]
        pred = torch.cat([net(c).argmax(1) for c in chunks])
    print(f"official test accuracy {(pred.numpy() == test.labels).mean():.4f}")
    ASSET.parent.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ASSET))
    print(f"wrote {ASSET} ({ASSET.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
