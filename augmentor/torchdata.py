"""Drop-in use with ``torch.utils.data``: a dataset wrapper that passes (epoch, index) to the
pipeline, so augmentation does not depend on the number of DataLoader workers."""

from __future__ import annotations

from typing import Any

from augmentor.pipeline import Pipeline


class AugmentedDataset:
    """Wrap a map-style dataset of ``(image, target)`` (or images) with a pipeline.

    Sample ``i`` at epoch ``e`` is augmented with the generator of ``(pipeline.seed, e, i)``,
    whatever the worker that loads it. Call :meth:`set_epoch` at the start of each epoch: the
    epoch lives in shared memory, so it reaches DataLoader workers that persist
    (``persistent_workers=True``) as well as fresh ones. An index may also be an ``(epoch, i)``
    pair, as a sampler of (epoch, index) yields.

    Example:
        >>> import numpy as np
        >>> from augmentor import AugmentedDataset, preset
        >>> data = [(np.zeros((8, 8, 3), np.uint8), 0)]
        >>> ds = AugmentedDataset(data, preset("light", seed=1))
        >>> ds[0][0].shape
        (8, 8, 3)
    """

    def __init__(self, dataset: Any, pipeline: Pipeline, epoch: int = 0) -> None:
        import torch

        self.dataset = dataset
        self.pipeline = pipeline
        # A one-element tensor in shared memory: DataLoader workers get the dataset once (a
        # persistent worker keeps its copy for the whole run), and torch's multiprocessing
        # passes a shared tensor by reference, so set_epoch in the main process reaches them.
        self._epoch = torch.full((1,), int(epoch), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int | tuple[int, int]) -> Any:
        if isinstance(index, tuple):
            epoch, index = int(index[0]), int(index[1])
        else:
            epoch = self.epoch
        item = self.dataset[index]
        if isinstance(item, tuple) and len(item) == 2:
            image, target = item
            return self.pipeline(image, index=int(index), epoch=epoch), target
        return self.pipeline(item, index=int(index), epoch=epoch)
