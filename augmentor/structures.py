"""Inputs as torchvision v2 takes them: one image, or a tuple/list/dict holding an image with
its mask, boxes and keypoints (``tv_tensors`` or named numpy arrays). :func:`parse_inputs`
flattens them into a :class:`~augmentor.backends.cpu.Sample` and gives back a function that
rebuilds the same structure and types from the augmented sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from augmentor.backends.cpu import Sample
from augmentor.convert import is_image_like, to_hwc

__all__ = ["Parsed", "final_tensor", "parse_inputs"]

# --------------------------------------------------------------------------------------------
# Input structures
# --------------------------------------------------------------------------------------------


class Parsed:
    def __init__(self) -> None:
        self.image_np: np.ndarray
        self.mask_np: np.ndarray | None = None
        self.boxes_np: np.ndarray | None = None
        self.kps_np: np.ndarray | None = None
        self.rebuild_fn: Any = None

    def rebuild(self, sample: Sample, as_tensor: bool) -> Any:
        return self.rebuild_fn(sample, as_tensor)


def _tv_kind(x: Any) -> str | None:
    import sys

    tv = sys.modules.get("torchvision.tv_tensors")
    if tv is None:
        return None
    for kind, cls_name in (
        ("image", "Image"),
        ("mask", "Mask"),
        ("boxes", "BoundingBoxes"),
        ("keypoints", "KeyPoints"),
    ):
        cls = getattr(tv, cls_name, None)
        if cls is not None and isinstance(x, cls):
            return kind
    return None


def parse_inputs(inputs: Any) -> Parsed:
    parsed = Parsed()
    if is_image_like(inputs):
        img, back = to_hwc(inputs)
        parsed.image_np = img

        def rebuild_single(sample: Sample, as_tensor: bool) -> Any:
            return final_tensor(sample.image) if as_tensor else back(sample.image)

        parsed.rebuild_fn = rebuild_single
        return parsed

    if not isinstance(inputs, (tuple, list, dict)):
        to_hwc(inputs)  # raises the TypeError that names what was passed

    from torch.utils._pytree import tree_flatten, tree_unflatten

    flat, spec = tree_flatten(inputs)
    keys = _dict_keys(inputs)
    roles: dict[str, int] = {}
    for i, leaf in enumerate(flat):
        kind = _tv_kind(leaf)
        if kind is None and keys is not None and isinstance(leaf, np.ndarray):
            kind = {
                "mask": "mask",
                "masks": "mask",
                "boxes": "boxes",
                "bboxes": "boxes",
                "keypoints": "keypoints",
            }.get(keys[i])
        if kind is None and is_image_like(leaf) and (keys is None or keys[i] == "image"):
            kind = "image"
        if kind is not None:
            if kind in roles:
                if kind == "image":
                    continue  # like torchvision: only the first plain image is transformed
                raise ValueError(f"inputs hold more than one {kind}; pass one per call")
            roles[kind] = i
    if "image" not in roles:
        raise ValueError(
            "inputs hold no image (a PIL image, numpy array, tensor or tv_tensors.Image)"
        )
    img, back = to_hwc(flat[roles["image"]])
    parsed.image_np = img
    h, w = img.shape[:2]
    extra: dict[str, Any] = {}
    if "mask" in roles:
        m = flat[roles["mask"]]
        arr = m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
        chw = hasattr(m, "detach") and arr.ndim == 3
        extra["mask_chw"] = chw
        if chw:
            arr = arr.transpose(1, 2, 0)
        if arr.shape[:2] != (h, w):
            raise ValueError(f"mask has size {arr.shape[:2]} but the image is {(h, w)}")
        parsed.mask_np = np.ascontiguousarray(arr)
    if "boxes" in roles:
        b = flat[roles["boxes"]]
        if _tv_kind(b) == "boxes":
            from torchvision.transforms.v2 import functional as TF

            xyxy = TF.convert_bounding_box_format(b, new_format="XYXY")
            parsed.boxes_np = xyxy.detach().cpu().numpy().astype(np.float64).reshape(-1, 4)
        else:
            parsed.boxes_np = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if "keypoints" in roles:
        k = flat[roles["keypoints"]]
        arr = k.detach().cpu().numpy() if hasattr(k, "detach") else np.asarray(k)
        extra["kps_shape"] = arr.shape
        parsed.kps_np = arr.astype(np.float64).reshape(-1, 2)

    def rebuild_struct(sample: Sample, as_tensor: bool) -> Any:
        out = list(flat)
        oh, ow = sample.image.shape[1:] if as_tensor else sample.image.shape[:2]
        out[roles["image"]] = final_tensor(sample.image) if as_tensor else back(sample.image)
        if "mask" in roles:
            orig = flat[roles["mask"]]
            m = sample.mask
            assert m is not None  # a mask went in, so the executor moved one
            if hasattr(orig, "detach"):
                import torch

                t = torch.from_numpy(
                    np.ascontiguousarray(m.transpose(2, 0, 1) if extra["mask_chw"] else m)
                ).to(orig.device)
                from torchvision import tv_tensors

                out[roles["mask"]] = tv_tensors.Mask(t) if _tv_kind(orig) else t
            else:
                out[roles["mask"]] = m
        if "boxes" in roles:
            orig = flat[roles["boxes"]]
            if _tv_kind(orig) == "boxes":
                import torch
                from torchvision import tv_tensors
                from torchvision.transforms.v2 import functional as TF

                bb = tv_tensors.BoundingBoxes(
                    torch.as_tensor(sample.boxes, dtype=orig.dtype),
                    format="XYXY",
                    canvas_size=(oh, ow),
                    device=orig.device,
                )
                out[roles["boxes"]] = TF.convert_bounding_box_format(bb, new_format=orig.format)
            else:
                assert sample.boxes is not None
                out[roles["boxes"]] = sample.boxes.astype(np.asarray(orig).dtype)
        if "keypoints" in roles:
            orig = flat[roles["keypoints"]]
            assert sample.keypoints is not None
            kp = sample.keypoints.reshape(extra["kps_shape"])
            if _tv_kind(orig) == "keypoints":
                import torch
                from torchvision import tv_tensors

                out[roles["keypoints"]] = tv_tensors.KeyPoints(
                    torch.as_tensor(kp, dtype=orig.dtype), canvas_size=(oh, ow), device=orig.device
                )
            else:
                out[roles["keypoints"]] = kp.astype(np.asarray(orig).dtype)
        return tree_unflatten(out, spec)

    parsed.rebuild_fn = rebuild_struct
    return parsed


def _dict_keys(inputs: Any) -> list[str] | None:
    if isinstance(inputs, dict) and all(
        not isinstance(v, (dict, list, tuple)) for v in inputs.values()
    ):
        from torch.utils._pytree import tree_flatten

        # pytree flattens a flat dict in its key order; keep the names of the leaves
        flat, _ = tree_flatten(inputs)
        if len(flat) == len(inputs):
            return [str(k) for k in inputs]
    return None


def final_tensor(chw: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(chw)
