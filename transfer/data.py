"""The training set that mixes real, classic-augmented and synthetic images, indexed by
``(epoch, index)``, its sampler, and the Lightning data module that feeds fine-tuning.

Synthetic images enter the training set only: the split functions never see them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from augmentor.pipeline import Pipeline
from augmentor.seeding import stream
from transfer.errors import DataError
from transfer.images import LabelledImages
from transfer.preprocess import PreprocessModule, to_chw_uint8

__all__ = ["EpochSampler", "EvalImages", "FinetuneData", "TrainImages", "variations_of"]


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` so each sample's randomness is a function of both.

    Shuffled (or class-balanced, drawn with replacement) from a generator seeded with
    ``(seed, epoch)``; with ``world_size > 1`` each rank takes its own interleaved share (padded
    to equal length), which replaces Lightning's DistributedSampler. Lightning calls
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> np.ndarray:
        rng = stream(self.seed, "epoch-order", self.epoch)
        if self.weights is not None:
            return rng.choice(self.n, size=self.n, p=self.weights / self.weights.sum())
        return rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        per_rank = len(self)
        order = np.resize(order, per_rank * self.world_size)
        for i in order[self.rank :: self.world_size]:
            yield (self.epoch, int(i))


class TrainImages(Dataset):
    """Real (+ synthetic) images, classic-augmented and preprocessed, indexed by (epoch, i).

    * indices below ``len(real)`` are the real images. With ``variations`` (real index -> the
      synthetic indices of its own variations) and ``replace_p``, each real image is replaced
      by one of its variations with probability ``replace_p`` (DA-Fusion's in-batch
      replacement), drawn from ``(seed, "replacement", epoch, i)``;
    * the next ``round(synthetic_ratio * len(real))`` slots are filled each epoch with a fresh
      seeded choice of synthetic images;
    * the next ``round(duplicate_ratio * len(real))`` slots with further copies of real images
      (each augmented with its slot's own draw): the control that tells "synthetic images
      helped" from "more images per epoch helped".

    Augmentation of sample i at epoch e is a pure function of (pipeline seed, e, i), whatever
    the worker count, and so is every pick above.
    """

    def __init__(
        self,
        real: LabelledImages,
        preprocess: PreprocessModule,
        pipeline: Pipeline | None = None,
        synthetic: LabelledImages | None = None,
        synthetic_ratio: float = 0.0,
        seed: int = 0,
        *,
        variations: Sequence[Sequence[int]] | None = None,
        replace_p: float = 0.0,
        duplicate_ratio: float = 0.0,
    ) -> None:
        if synthetic is not None and synthetic.classes != real.classes:
            raise DataError(
                f"synthetic classes {synthetic.classes} do not match the real classes "
                f"{real.classes}"
            )
        for name, value in (
            ("synthetic_ratio", synthetic_ratio),
            ("duplicate_ratio", duplicate_ratio),
        ):
            if value < 0:
                raise DataError(f"{name} must be >= 0, got {value}")
        if not 0 <= replace_p <= 1:
            raise DataError(f"replace_p must be in [0, 1], got {replace_p}")
        if variations is not None and len(variations) != len(real):
            raise DataError(f"variations has {len(variations)} entries for {len(real)} images")
        self.real = real
        self.synthetic = synthetic
        self.n_synthetic = round(synthetic_ratio * len(real)) if synthetic is not None else 0
        self.n_duplicate = round(duplicate_ratio * len(real))
        self.variations = [list(v) for v in variations] if variations is not None else None
        self.replace_p = replace_p if variations is not None and synthetic is not None else 0.0
        self.preprocess = preprocess
        self.pipeline = pipeline
        self.seed = seed

    def __len__(self) -> int:
        return len(self.real) + self.n_synthetic + self.n_duplicate

    def labels(self) -> np.ndarray:
        """Labels of the real part (the other slots change with the epoch)."""
        return self.real.labels

    def image(self, epoch: int, i: int) -> tuple[np.ndarray, int]:
        n = len(self.real)
        if i < n:
            if self.replace_p > 0 and self.variations is not None and self.variations[i]:
                rng = stream(self.seed, "replacement", epoch, i)
                if rng.random() < self.replace_p:
                    options = self.variations[i]
                    j = options[int(rng.integers(len(options)))]
                    assert self.synthetic is not None
                    return self.synthetic.images[j], int(self.synthetic.labels[j])
            return self.real.images[i], int(self.real.labels[i])
        if i < n + self.n_synthetic:
            assert self.synthetic is not None
            pick = stream(self.seed, "synthetic-pick", epoch).permutation(len(self.synthetic))
            j = int(pick[(i - n) % len(self.synthetic)])
            return self.synthetic.images[j], int(self.synthetic.labels[j])
        pick = stream(self.seed, "duplicate-pick", epoch).permutation(n)
        j = int(pick[(i - n - self.n_synthetic) % n])
        return self.real.images[j], int(self.real.labels[j])

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        img, label = self.image(epoch, i)
        if self.pipeline is not None:
            img = self.pipeline(img, index=i, epoch=epoch)
        with torch.no_grad():
            x = self.preprocess(to_chw_uint8(np.ascontiguousarray(img))[None])[0]
        return x, label


def variations_of(
    real: LabelledImages, synthetic: LabelledImages, folder: str | Path
) -> list[list[int]]:
    """For each real image, the indices in ``synthetic`` of its own variations, read from the
    variation folder's ``manifest.jsonl`` (``augment sample --like`` names each output's source
    by content). A folder without that manifest is an error: it holds no variations."""
    import json

    manifest = Path(folder) / "manifest.jsonl"
    rows: dict[str, str] = {}
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "source_key" in row and "output" in row:
                rows[str(Path(folder) / row["output"])] = row["source_key"]
    if not rows:
        raise DataError(
            f"{str(folder)!r} holds no variations of real images (its manifest names no "
            "sources): make it with `augment sample GEN DST --like REAL_DIR`, or use "
            "synthetic_mode='extra'"
        )
    by_key: dict[str, list[int]] = {}
    rows = {str(Path(k).resolve()): v for k, v in rows.items()}
    for j, src in enumerate(synthetic.sources):
        key = rows.get(str(Path(src).resolve()))
        if key is not None:
            by_key.setdefault(key, []).append(j)
    return [by_key.get(k, []) for k in real.content_keys()]


class EvalImages(Dataset):
    """Preprocessed images without augmentation, in order."""

    def __init__(self, data: LabelledImages, preprocess: PreprocessModule) -> None:
        self.data = data
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with torch.no_grad():
            x = self.preprocess(to_chw_uint8(self.data.images[i])[None])[0]
        return x, int(self.data.labels[i])


def predict_outputs(
    model: torch.nn.Module, preprocess: PreprocessModule, data: LabelledImages, batch_size: int = 64
) -> np.ndarray:
    """``model``'s float32 outputs on ``data`` in order (eval mode, on the model's device)."""
    device = next(model.parameters()).device
    model.eval()
    loader = DataLoader(EvalImages(data, preprocess), batch_size=batch_size)
    out = []
    with torch.inference_mode():
        for x, _ in loader:
            out.append(model(x.to(device)).float().cpu())
    return torch.cat(out).numpy()


class FinetuneData(L.LightningDataModule):
    """Builds the loaders once the trainer knows this process's rank, so the (epoch, index)
    sampler can take its share itself (Lightning's DistributedSampler is turned off; Lightning
    still calls the sampler's ``set_epoch`` every epoch)."""

    def __init__(
        self,
        trainset: TrainImages,
        valset: EvalImages | None,
        batch_size: int,
        num_workers: int,
        seed: int,
        weights: np.ndarray | None,
    ) -> None:
        super().__init__()
        self.trainset, self.valset = trainset, valset
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed, self.weights = seed, weights

    def train_dataloader(self) -> DataLoader:
        assert self.trainer is not None, "the loaders are built by a Trainer"
        rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = EpochSampler(len(self.trainset), self.seed, True, self.weights, rank, world)
        workers = self.num_workers
        return DataLoader(
            self.trainset,
            pin_memory=torch.cuda.is_available(),
            # the sampler passes (epoch, index): workers need no epoch, so they can persist
            persistent_workers=workers > 0,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=len(sampler) > self.batch_size,
        )

    def val_dataloader(self) -> Any:
        if self.valset is None:  # the trainer has limit_val_batches=0 then
            return DataLoader(self.trainset, batch_size=self.batch_size, sampler=[])
        return DataLoader(
            self.valset,
            batch_size=64,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )
