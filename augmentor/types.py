"""The plain data of the op graph, shared by the ops (which sample it) and the backends (which
execute it). Nothing here imports more than the standard library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Canvas", "OpKind", "Record", "Size"]

Record = dict[str, Any]  # {"op": name, "params": {...}}: JSON-serialisable
Size = tuple[int, int]  # (height, width)

# How the planner may fuse an op (see augmentor.ops.base.Op.kind).
OpKind = Literal["geometric", "color", "lut", "field", "pixel", "mix", "final"]


@dataclass
class Canvas:
    """What a sampler may know about the image at a point of the pipeline: its size and channels."""

    height: int
    width: int
    channels: int = 3

    @property
    def size(self) -> Size:
        return (self.height, self.width)
