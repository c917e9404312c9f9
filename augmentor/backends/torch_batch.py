"""Batched execution on a torch device (GPU when present), different parameters per image.

Each image's records are planned exactly as on CPU (:func:`augmentor.backends.plan.plan`); images
whose plans have the same step signature run together, step by step:

- a fused warp is one ``grid_sample`` over the group, one homography per image;
- a fused colour map is one batched matrix product, a LUT run one gather;
- the final normalisation is one fused multiply-add;
- every pixel op has an ``apply_torch`` kernel that runs on the images' device and writes the
  per-image pixels (within one level); on a CPU batch the ops whose numpy kernel is faster
  there (``numpy_on_cpu``: the Gaussian and speckle noises and hue, measured 10-13x) run it
  per image instead, with the same result (``tests/test_batch.py`` checks both, and that no
  op lacks a kernel).

With a fixed pipeline most images share a signature, so most of the work is batched; a random
policy (RandAugment, ...) splits the batch into smaller groups but stays correct.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from augmentor.backends.cpu import apply_mix
from augmentor.backends.fuse import apply_lut_float, compose_color, compose_lut, needs_mean
from augmentor.backends.plan import (
    ColorStep,
    FieldStep,
    FinalStep,
    LutStep,
    MixStep,
    WarpStep,
    plan,
)
from augmentor.ops.base import finish_tensor, per_image_numpy, tensor_max_value, to_numpy_hwc
from augmentor.registry import OPS
from augmentor.types import Record


def _fill_tensor(fills: list[Any], c: int, vmax: float, device: torch.device) -> torch.Tensor:
    rows = []
    for f in fills:
        values = f if isinstance(f, list) else [f] * 3
        values = (values + [0.0] * 3)[:c] if c <= 3 else values + [0.0] * (c - 3)
        rows.append([v * vmax for v in values][:c])
    return torch.tensor(rows, dtype=torch.float32, device=device).view(len(fills), c, 1, 1)


_MODES = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic"}


def warp_batch(
    steps: list[WarpStep],
    x: torch.Tensor,
    interpolation: str | None = None,
    fills: list[Any] | None = None,
) -> torch.Tensor:
    n, c, h, w = x.shape
    oh, ow = steps[0].out_size
    dev = x.device
    vmax = tensor_max_value(x)
    inv = torch.as_tensor(
        np.stack([np.linalg.inv(s.matrix) for s in steps]), dtype=torch.float32, device=dev
    )
    ys, xs = torch.meshgrid(
        torch.arange(oh, device=dev, dtype=torch.float32) + 0.5,
        torch.arange(ow, device=dev, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    base = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, -1, 3)
    src = base @ inv.transpose(1, 2)  # N x HW x 3
    src = src[..., :2] / src[..., 2:3]
    grid = torch.empty_like(src)
    grid[..., 0] = src[..., 0] * (2.0 / w) - 1.0
    grid[..., 1] = src[..., 1] * (2.0 / h) - 1.0
    grid = grid.view(n, oh, ow, 2)
    fill = _fill_tensor(fills if fills is not None else [s.fill for s in steps], c, vmax, dev)
    xf = x.float() - fill  # sample (x - fill) with zero padding, add fill back: constant border
    if any(s.clip is not None for s in steps):
        keep = torch.ones(n, 1, h, w, device=dev)
        cols = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
        rows = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
        for i, s in enumerate(steps):
            if s.clip is not None:
                x0, y0, x1, y1 = (round(v) for v in s.clip)
                keep[i, 0] = (
                    ((rows >= y0) & (rows <= y1))[:, None] & ((cols >= x0) & (cols <= x1))[None, :]
                ).float()
        xf = xf * keep
    mode = _MODES[interpolation or steps[0].interpolation]
    y = F.grid_sample(xf, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if mode != "nearest":
        # Shrinking by more than 2x: grid_sample has no antialiasing, so, as the CPU path
        # does, area-average those images first to 1.5x the output scale; the normalised grid
        # refers to the image's extent, so it samples the smaller image unchanged. The area
        # weights are OpenCV's INTER_AREA (exact box overlaps), as two small matrices:
        # F.interpolate(mode="area") is adaptive pooling, 3 levels away from it.
        for i, s in enumerate(steps):
            size = s.prefilter_size(h, w)
            if size is None:
                continue
            rows, cols = _area_weights(h, size[0], dev), _area_weights(w, size[1], dev)
            small = torch.einsum("oh,nchw,pw->ncop", rows, xf[i : i + 1], cols)
            y[i : i + 1] = F.grid_sample(
                small, grid[i : i + 1], mode=mode, padding_mode="zeros", align_corners=False
            )
    return finish_tensor(y + fill, x.dtype)


def _area_weights(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """``(n_out, n_in)``: each output pixel the mean of the input span it covers, partial
    pixels weighted by their overlap (OpenCV's INTER_AREA when shrinking)."""
    r = n_in / n_out
    lo = torch.arange(n_out, dtype=torch.float64, device=device)[:, None] * r
    i = torch.arange(n_in, dtype=torch.float64, device=device)[None, :]
    overlap = (torch.minimum(lo + r, i + 1) - torch.maximum(lo, i)).clamp(min=0)
    return (overlap / r).float()


def color_batch(records: list[list[Record]], x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    vmax = tensor_max_value(x)
    xf = x.float()
    means = xf.mean(dim=(2, 3)).cpu().numpy().astype(np.float64)
    mats, offs = [], []
    for i, recs in enumerate(records):
        m, b = compose_color(recs, means[i] if needs_mean(recs) else np.zeros(c), vmax)
        mats.append(m)
        offs.append(b)
    m_t = torch.as_tensor(np.stack(mats), dtype=torch.float32, device=x.device)
    b_t = torch.as_tensor(np.stack(offs), dtype=torch.float32, device=x.device)
    y = torch.einsum("nij,njhw->nihw", m_t, xf) + b_t[:, :, None, None]
    return finish_tensor(y, x.dtype)


def lut_batch(records: list[list[Record]], x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.uint8:
        outs = [
            torch.from_numpy(apply_lut_float(to_numpy_hwc(img), r)).permute(2, 0, 1)
            for img, r in zip(x, records)
        ]
        return torch.stack(outs).to(x.device, x.dtype)
    tables = torch.as_tensor(np.stack([compose_lut(r) for r in records]), device=x.device)
    n = x.shape[0]
    idx = x.long() + (torch.arange(n, device=x.device) * 256).view(n, 1, 1, 1)
    return tables.view(-1)[idx]


def final_batch(records: list[Record], x: torch.Tensor) -> torch.Tensor:
    cls = OPS.get(records[0]["op"])
    c = x.shape[1]
    so = [cls.scale_offset(r["params"], c, tensor_max_value(x)) for r in records]
    scale = torch.as_tensor(np.stack([s for s, _ in so]), dtype=torch.float32, device=x.device)
    off = torch.as_tensor(np.stack([o for _, o in so]), dtype=torch.float32, device=x.device)
    return x.float() * scale[:, :, None, None] + off[:, :, None, None]


def field_batch(steps: list[FieldStep], x: torch.Tensor) -> torch.Tensor:
    _, c, h, w = x.shape
    grids = []
    for s in steps:
        map_x, map_y = OPS.get(s.record["op"]).field(s.record["params"], s.size)
        grids.append(
            np.stack([(map_x + 0.5) * (2.0 / w) - 1.0, (map_y + 0.5) * (2.0 / h) - 1.0], axis=-1)
        )
    grid = torch.as_tensor(np.stack(grids), dtype=torch.float32, device=x.device)
    p0 = steps[0].record["params"]
    fill = _fill_tensor(
        [s.record["params"].get("fill", 0.0) for s in steps], c, tensor_max_value(x), x.device
    )
    y = (
        F.grid_sample(
            x.float() - fill,
            grid,
            mode=_MODES[p0.get("interpolation", "bilinear")],
            padding_mode="zeros",
            align_corners=False,
        )
        + fill
    )
    return finish_tensor(y, x.dtype)


def _signature(steps: list) -> tuple:
    sig: list[tuple[Any, ...]] = []
    for s in steps:
        if isinstance(s, WarpStep):
            sig.append(("warp", tuple(s.out_size), s.interpolation))
        elif isinstance(s, FieldStep):
            sig.append(("field", s.record["op"], s.record["params"].get("interpolation")))
        elif isinstance(s, ColorStep):
            sig.append(("color",))
        elif isinstance(s, LutStep):
            sig.append(("lut",))
        elif isinstance(s, FinalStep):
            sig.append(("final",))
        elif isinstance(s, MixStep):
            sig.append(("mix",))
        else:
            sig.append(("op", s.record["op"]))
    return tuple(sig)


def run_group(plans: list[list], x: torch.Tensor) -> torch.Tensor:
    for k in range(len(plans[0])):
        column = [p[k] for p in plans]
        first = column[0]
        if isinstance(first, WarpStep):
            x = warp_batch(column, x)
        elif isinstance(first, ColorStep):
            x = color_batch([s.records for s in column], x)
        elif isinstance(first, LutStep):
            x = lut_batch([s.records for s in column], x)
        elif isinstance(first, FinalStep):
            x = final_batch([s.record for s in column], x)
        elif isinstance(first, FieldStep):
            x = field_batch(column, x)
        elif isinstance(first, MixStep):
            x = per_image_numpy(apply_mix, x, [s.record["params"] for s in column])
        else:
            cls = OPS.get(first.record["op"])
            params = [s.record["params"] for s in column]
            if cls.apply_torch is not None and not (x.device.type == "cpu" and cls.numpy_on_cpu):
                x = cls.apply_torch(x, params)
            else:
                x = per_image_numpy(cls.apply_np, x, params)
    return x


def apply_records_batch(
    records: list[list[Record]], images: torch.Tensor
) -> torch.Tensor | list[torch.Tensor]:
    """Replay one record list per image on an ``N x C x H x W`` batch, on its device.

    Returns a stacked tensor when all outputs have the same shape, else a list.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    if len(records) != images.shape[0]:
        raise ValueError(f"got {len(records)} record lists for {images.shape[0]} images")
    size = (int(images.shape[-2]), int(images.shape[-1]))
    plans = [plan(r, size) for r in records]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(plans):
        groups.setdefault(_signature(p), []).append(i)
    by_index: dict[int, torch.Tensor] = {}
    for idx in groups.values():
        sub = images[idx] if len(idx) < len(plans) else images
        y = run_group([plans[i] for i in idx], sub)
        for j, i in enumerate(idx):
            by_index[i] = y[j]
    outs = [by_index[i] for i in range(len(plans))]
    shapes = {(o.shape, o.dtype) for o in outs}
    if len(shapes) == 1:
        return torch.stack(outs)
    return outs
