"""Drop-in use with ``torch.utils.data``: a dataset wrapper that passes (epoch, index) to the
pipeline, so augmentation does not depend on the number of DataLoader workers."""

from __future__ import annotations

from typing import Any

from augmentor.pipeline import Pipeline


class AugmentedDataset:
    """Wrap a map-style dataset of ``(image, target)`` (or images) with a pipeline.

    Sample ``i`` at epoch ``e`` is augmented with the generator of ``(pipeline.seed, e, i)``,
    whatever the worker that loads it. Call :meth:`set_epoch` at the start of each epoch (with
    the default non-persistent workers, the new value reaches the workers).

    Example:
        >>> import numpy as np
        >>> from augmentor import AugmentedDataset, preset
        >>> data = [(np.zeros((8, 8, 3), np.uint8), 0)]
        >>> ds = AugmentedDataset(data, preset("light", seed=1))
        >>> ds[0][0].shape
        (8, 8, 3)
    """

    def __init__(self, dataset: Any, pipeline: Pipeline, epoch: int = 0) -> None:
        self.dataset = dataset
        self.pipeline = pipeline
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, tuple) and len(item) == 2:
            image, target = item
            return self.pipeline(image, index=int(index), epoch=self.epoch), target
        return self.pipeline(item, index=int(index), epoch=self.epoch)
