"""Frozen-feature cache: with the backbone frozen, each image's features are computed once.

Entries are keyed by (backbone weights fingerprint, preprocessing, augmentation pipeline and
seed, view) for a directory, and by the image's pixel hash inside it, so a changed weight file or
pipeline lands in another directory and a changed image misses. View 0 is the clean image; views
1..K-1 are classic-augmented copies whose randomness is a function of (pipeline seed, view,
image hash), so they do not depend on the image's position in the dataset.

On disk a directory holds safetensors shards (features plus the keys of their rows in the
metadata), each written atomically; new entries go to a new shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmentor.io import atomic_write_bytes
from augmentor.pipeline import Pipeline
from augmentor.seeding import stream
from transfer.backbones import Backbone
from transfer.images import LabelledImages
from transfer.preprocess import PreprocessModule, to_chw_uint8

log = logging.getLogger(__name__)

__all__ = ["FeatureCache", "extract_features"]


def _view_rng(seed: int, view: int, key: str) -> Any:
    """The augmentation of ``view`` of the image whose content hash is ``key``: a function of
    the image, not of its position in the dataset."""
    return stream(seed, "feature-view", view, int(key[:8], 16), int(key[8:16], 16))


def extract_features(
    backbone: Backbone,
    preprocess: PreprocessModule,
    images: list[np.ndarray],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Features of ``images`` (HWC uint8, any sizes) in eval mode, as a float32 CPU tensor."""
    backbone.eval().to(device)
    preprocess.to(device)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            x = torch.cat([preprocess(to_chw_uint8(im)[None].to(device)) for im in chunk])
            out.append(backbone(x).float().cpu())
            if progress is not None:
                progress(len(chunk))
    if not out:
        return torch.zeros(0, backbone.num_features)
    return torch.cat(out)


class FeatureCache:
    """Features of (image, view) pairs for one frozen backbone, on disk or in memory only.

    Args:
        root: the cache directory, or None to keep entries in memory for this process only.

    Example:
        >>> cache = FeatureCache(None)
        >>> from transfer.backbones import create_backbone
        >>> bb = create_backbone("small_cnn", pretrained=False)
        >>> data = LabelledImages.from_arrays(np.zeros((3, 28, 28), np.uint8), [0, 1, 1], "ab")
        >>> from augmentor import preset
        >>> pre = PreprocessModule(bb.preprocessing)
        >>> cache.features(bb, pre, data, views=2, pipeline=preset("light")).shape
        torch.Size([2, 3, 3136])
        >>> cache.misses, cache.features(bb, pre, data).shape, cache.hits
        (6, torch.Size([1, 3, 3136]), 3)
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def directory_key(
        backbone: Backbone, preprocess: PreprocessModule, pipeline: Pipeline | None
    ) -> str:
        h = hashlib.sha256(backbone.fingerprint().encode())
        pre = {
            "input_size": preprocess.input_size,
            "resize_size": preprocess.resize_size,
            "mode": preprocess.mode,
            "mean": preprocess.get_buffer("mean").flatten().tolist(),
            "std": preprocess.get_buffer("std").flatten().tolist(),
        }
        h.update(json.dumps(pre, sort_keys=True).encode())
        if pipeline is not None:
            h.update(json.dumps(pipeline.get_config(), sort_keys=True).encode())
            h.update(str(pipeline.seed).encode())
        return h.hexdigest()[:32]

    def _entries(self, key: str) -> dict[str, torch.Tensor]:
        if key in self._memory:
            return self._memory[key]
        entries: dict[str, torch.Tensor] = {}
        if self.root is not None and (self.root / key).is_dir():
            from safetensors import safe_open

            for shard in sorted((self.root / key).glob("shard-*.safetensors")):
                try:
                    with safe_open(str(shard), framework="pt") as f:
                        names = json.loads(f.metadata()["keys"])
                        feats = f.get_tensor("features")
                except Exception as e:  # a damaged shard is a cache miss, not a failure
                    log.warning("feature cache: ignoring unreadable %s (%s)", shard, e)
                    continue
                if feats.shape[0] != len(names):
                    log.warning("feature cache: ignoring inconsistent %s", shard)
                    continue
                entries.update(zip(names, feats))
        self._memory[key] = entries
        return entries

    def _store(self, key: str, names: list[str], feats: torch.Tensor) -> None:
        entries = self._entries(key)
        entries.update(zip(names, feats))
        if self.root is None:
            return
        from safetensors.torch import save

        data = save({"features": feats.contiguous()}, metadata={"keys": json.dumps(names)})
        atomic_write_bytes(self.root / key / f"shard-{uuid.uuid4().hex}.safetensors", data)

    def features(
        self,
        backbone: Backbone,
        preprocess: PreprocessModule,
        data: LabelledImages,
        views: int = 1,
        pipeline: Pipeline | None = None,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """``(views, len(data), num_features)`` features; view 0 unaugmented.

        Views beyond 0 need a pipeline. Only missing entries are computed.
        """
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if views > 1 and pipeline is None:
            raise ValueError("views > 1 needs an augmentation pipeline")
        keys = data.content_keys()
        out = torch.empty(views, len(data), backbone.num_features)
        for view in range(views):
            pipe = pipeline if view > 0 else None
            dkey = self.directory_key(backbone, preprocess, pipe)
            entries = self._entries(dkey)
            names = [f"{k}:{view}" if view else k for k in keys]
            todo = [i for i, n in enumerate(names) if n not in entries]
            self.hits += len(names) - len(todo)
            self.misses += len(todo)
            if todo:
                images = [data.images[i] for i in todo]
                if pipe is not None:
                    images = [
                        pipe(img, rng=_view_rng(pipe.seed, view, keys[i]))
                        for img, i in zip(images, todo)
                    ]
                feats = extract_features(backbone, preprocess, images, batch_size, device, progress)
                self._store(dkey, [names[i] for i in todo], feats)
            for i, n in enumerate(names):
                out[view, i] = entries[n]
        return out
