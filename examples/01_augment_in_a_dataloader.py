"""Classic augmentation in a torch DataLoader, deterministic for any worker count.

python examples/01_augment_in_a_dataloader.py
"""

import numpy as np
import torch

import augmentor as A
from augmentor.datasets import fashion_mnist_subset


class FashionSubset(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.data = fashion_mnist_subset("train")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.data.images[i][..., None], int(self.data.labels[i])  # HxWx1 uint8


def main() -> None:
    pipe = A.Pipeline(
        [
            A.RandomResizedCrop(32, scale=(0.6, 1.0)),
            A.HorizontalFlip(p=0.5),
            A.Affine(degrees=10, translate=(0.05, 0.05)),
            A.ColorJitter(brightness=0.2, contrast=0.2),
            A.RandomErasing(p=0.25),
            A.Normalize(mean=[0.5], std=[0.5]),
        ],
        seed=0,
    )
    ds = A.AugmentedDataset(FashionSubset(), pipe)
    sums = []
    for workers in (0, 2):
        ds.set_epoch(1)
        loader = torch.utils.data.DataLoader(ds, batch_size=100, num_workers=workers)
        x, y = next(iter(loader))
        sums.append(float(x.double().sum()))
        print(f"workers={workers}: batch {tuple(x.shape)} {x.dtype}, checksum {sums[-1]:.4f}")
    assert np.isclose(sums[0], sums[1]), "augmentation must not depend on the worker count"
    print("same batch with 0 and 2 workers")


if __name__ == "__main__":
    main()
