"""Audit a small labelled image folder before training on it: duplicates, train/test leaks,
the same image under two classes, likely label errors, outliers and the folder's own facts.

Nothing in the data is changed; :func:`write_clean` writes a cleaned copy. How each finding is
made (the thresholds were measured, ``benchmarks/audit.py`` and BENCHMARKS.md):

* **exact**: identical decoded pixels (the content hash the feature cache keys on);
* **near-identical**: a perceptual thumbnail (the 8x8 grey image, mean and contrast removed)
  whose nearest other thumbnail is much nearer than the next one: distance ratio at most
  :data:`NEAR_RATIO` (Lowe's ratio test) and cosine at least :data:`NEAR_MIN_COSINE`. A
  resized, re-encoded or slightly cropped copy passes; two distinct but similar images (two
  plain trousers) do not, because each has several neighbours that close;
* **near-duplicate**: cosine similarity of the backbone's pooled features at least
  :data:`DUPLICATE_COSINE`;
* pairs join into clusters (union-find); a cluster with members in DATA and TEST is a
  **leak**, one whose members carry different classes a **conflict**;
* **label suspects**: out-of-fold probabilities of a linear probe on the cached features
  (stratified k-fold), then confident learning (Northcutt et al. 2021): an image is suspect
  when another class's probability reaches that class's mean self-confidence and its own
  label's does not; ranked by the given label's probability;
* **outliers**: the mean cosine distance to the :data:`OUTLIER_K` nearest images, with a robust
  z-score (median and MAD over the folder) above :data:`OUTLIER_Z`.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfer.errors import DataError
from transfer.images import LabelledImages, load_folder

log = logging.getLogger(__name__)

__all__ = [
    "DUPLICATE_COSINE",
    "NEAR_RATIO",
    "OUTLIER_Z",
    "AuditResult",
    "audit",
    "thumbnails",
    "write_clean",
]

# measured on planted copies against distinct images of three training pools (BENCHMARKS.md)
NEAR_RATIO = 0.2  # nearest thumbnail distance / second nearest, at most: near-identical
NEAR_MIN_COSINE = 0.95  # and the thumbnails at least this similar
THUMB_SIDE = 8
DUPLICATE_COSINE = 0.97  # feature cosine similarity at least this: near-duplicate
OUTLIER_K = 5
OUTLIER_Z = 5.0
FOLDS = 5
SUSPECTS_SHOWN = 20


def thumbnails(images: Sequence[np.ndarray], side: int = THUMB_SIDE) -> torch.Tensor:
    """Unit-norm ``side x side`` grey thumbnails with their mean removed, one row per image
    (a constant image gives a zero row). The continuous form of an average hash: written here
    because comparing them by a distance ratio is what works on small images, which bit hashes
    (``imagehash``) do not allow.

    Example:
        >>> a = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
        >>> t = thumbnails([a, a[::2, ::2]])
        >>> round(float(t[0] @ t[1]), 3)
        1.0
    """
    from PIL import Image

    rows = []
    for image in images:
        grey = image.mean(axis=2) if image.ndim == 3 else image
        small = Image.fromarray(grey.astype(np.float32), mode="F")
        t = np.asarray(small.resize((side, side), Image.Resampling.BILINEAR)).ravel()
        t = t - t.mean()
        rows.append(t / max(float(np.linalg.norm(t)), 1e-6))
    return torch.tensor(np.stack(rows)) if rows else torch.zeros(0, side * side)


@dataclass
class AuditResult:
    """What :func:`audit` found (``to_dict`` is ``audit.json``)."""

    data: str
    test: str | None
    facts: dict[str, Any]
    clusters: list[dict[str, Any]]
    suspects: list[dict[str, Any]]
    outliers: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    images: LabelledImages | None = field(default=None, repr=False)  # DATA then TEST

    @property
    def leaks(self) -> list[dict[str, Any]]:
        return [c for c in self.clusters if c["leak"]]

    @property
    def conflicts(self) -> list[dict[str, Any]]:
        return [c for c in self.clusters if c["conflict"]]

    @property
    def duplicates(self) -> list[dict[str, Any]]:
        """Clusters with two or more images of DATA."""
        return [c for c in self.clusters if sum(m["split"] == "data" for m in c["members"]) > 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "test": self.test,
            "settings": self.settings,
            "facts": self.facts,
            "summary": self.counts(),
            "clusters": self.clusters,
            "label_suspects": self.suspects,
            "outliers": self.outliers,
            "notes": self.notes,
            "unreadable": [list(s) for s in self.skipped],
        }

    def counts(self) -> dict[str, int]:
        in_data = sum(sum(m["split"] == "data" for m in c["members"]) - 1 for c in self.duplicates)
        return {
            "images": self.facts["images"],
            "test_images": self.facts.get("test_images", 0),
            "duplicate_clusters": len(self.duplicates),
            "redundant_images": in_data,
            "leaks": len(self.leaks),
            "conflicts": len(self.conflicts),
            "label_suspects": len(self.suspects),
            "outliers": len(self.outliers),
            "unreadable": len(self.skipped),
        }

    def summary(self) -> str:
        """The one-screen terminal summary."""
        c, f = self.counts(), self.facts
        per_class = ", ".join(f"{k} {v}" for k, v in f["per_class"].items())
        lines = [
            f"{c['images']} images in {len(f['per_class'])} classes ({per_class}); "
            f"imbalance {f['imbalance']:.1f}x"
            + (f"; {c['test_images']} test images" if self.test else ""),
            f"duplicates: {c['duplicate_clusters']} clusters, {c['redundant_images']} redundant "
            "images",
        ]
        if self.test:
            lines.append(f"leaks (the same image in DATA and TEST): {c['leaks']}")
        lines += [
            f"conflicts (the same image under two classes): {c['conflicts']}",
            f"likely label errors: {c['label_suspects']}",
            f"outliers: {c['outliers']}",
        ]
        for s in self.suspects[:5]:
            lines.append(
                f"  {s['path']}: labelled {s['given']} ({s['p_given']:.2f}), looks like "
                f"{s['suggested']} ({s['p_suggested']:.2f})"
            )
        if f.get("exif_rotated"):
            lines.append(f"{f['exif_rotated']} images carry an EXIF rotation (applied on reading)")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"unreadable: {p} ({why})" for p, why in self.skipped]
        return "\n".join(lines)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def folder_facts(data: LabelledImages) -> dict[str, Any]:
    """Images per class, imbalance, sizes, modes and EXIF rotations (read from the headers)."""
    from PIL import Image

    counts = {c: int((data.labels == i).sum()) for i, c in enumerate(data.classes)}
    present = [v for v in counts.values() if v]
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    rotated = 0
    for src in data.sources:
        try:
            with Image.open(src) as im:
                sizes[f"{im.width}x{im.height}"] += 1
                modes[im.mode] += 1
                rotated += int(im.getexif().get(0x0112, 1) not in (0, 1))
        except OSError:  # decoded once already; a header that fails now is not a finding
            continue
    return {
        "images": len(data),
        "per_class": counts,
        "imbalance": max(present) / min(present) if present else 0.0,
        "sizes": dict(sizes.most_common(10)),
        "distinct_sizes": len(sizes),
        "modes": dict(modes),
        "exif_rotated": rotated,
    }


def _pairs_ratio(
    thumbs: torch.Tensor, ratio: float, min_cosine: float, chunk: int = 2048
) -> list[tuple[int, int, float]]:
    """(i, j, cosine) where j is i's nearest row and at most ``ratio`` times as far as i's
    second nearest (cosine distances), with cosine at least ``min_cosine``."""
    n = len(thumbs)
    if n < 3:
        return []
    out = []
    for start in range(0, n, chunk):
        dist = 1 - thumbs[start : start + chunk] @ thumbs.T
        rows = torch.arange(len(dist))
        dist[rows, rows + start] = float("inf")
        near = dist.topk(2, dim=1, largest=False)
        for r in range(len(dist)):
            d1, d2 = float(near.values[r, 0]), float(near.values[r, 1])
            if d1 <= ratio * d2 and 1 - d1 >= min_cosine:
                i, j = start + r, int(near.indices[r, 0])
                out.append((min(i, j), max(i, j), 1 - d1))
    return out


def _pairs_cosine(unit: torch.Tensor, threshold: float, chunk: int = 2048):
    """(i, j, similarity) for i < j with cosine similarity >= threshold."""
    out = []
    for start in range(0, len(unit), chunk):
        sim = unit[start : start + chunk] @ unit.T
        ii, jj = torch.nonzero(sim >= threshold, as_tuple=True)
        for i, j in zip(ii.tolist(), jj.tolist()):
            if start + i < j:
                out.append((start + i, j, float(sim[i, j])))
    return out


def label_suspects(
    feats: torch.Tensor,
    labels: np.ndarray,
    classes: Sequence[str],
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold class probabilities ``(n, k)`` of a linear probe on ``feats`` (NaN rows for
    images of classes too small to hold out), and notes on what was skipped. Images of one
    ``groups`` value (a duplicate cluster) share a fold, so a copy never vouches for itself."""
    from transfer.splits import stratified_folds
    from transfer.synthetic import fit_linear_probe

    k = len(classes)
    counts = np.bincount(labels, minlength=k)
    notes = []
    small = [classes[c] for c in range(k) if 0 < counts[c] < 2]
    if small:
        notes.append(
            f"label check skipped for {', '.join(small)}: a class needs 2 images to hold one out"
        )
    usable = np.flatnonzero(counts[labels] >= 2)
    probs = np.full((len(labels), k), np.nan)
    if len(set(labels[usable].tolist())) < 2:
        notes.append("label check skipped: it needs two classes of 2 or more images")
        return probs, notes
    k_folds = min(FOLDS, int(counts[counts >= 2].min()))
    if groups is None:
        folds = stratified_folds(labels[usable], k_folds, seed)
    else:  # deal whole groups (each by its first member's label) into the folds
        g = groups[usable]
        heads = np.unique(g, return_index=True)[1]
        group_folds = stratified_folds(labels[usable][heads], k_folds, seed)
        fold_of = {int(g[heads[i]]): f for f, idx in enumerate(group_folds) for i in idx}
        where = np.array([fold_of[int(v)] for v in g])
        folds = [np.flatnonzero(where == f) for f in range(k_folds)]
    x = feats[usable].float()
    for held in folds:
        fit = np.setdiff1d(np.arange(len(usable)), held)
        xf = x[fit]
        mean, std = xf.mean(0), xf.std(0).clamp_min(1e-6)
        head = fit_linear_probe((xf - mean) / std, torch.as_tensor(labels[usable][fit]), k)
        with torch.no_grad():
            p = head((x[held] - mean) / std).softmax(1).numpy()
        probs[usable[held]] = p
    return probs, notes


def confident_errors(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of likely label errors by confident learning, most likely first."""
    ok = ~np.isnan(probs[:, 0])
    k = probs.shape[1]
    self_conf = np.where(ok, probs[np.arange(len(labels)), labels], np.nan)
    thresholds = np.array(
        [
            np.nanmean(self_conf[(labels == c) & ok]) if ((labels == c) & ok).any() else np.inf
            for c in range(k)
        ]
    )
    above = probs >= thresholds[None, :]
    above[np.arange(len(labels)), labels] = False
    flagged = ok & above.any(1) & (self_conf < thresholds[labels])
    idx = np.flatnonzero(flagged)
    return idx[np.argsort(self_conf[idx], kind="stable")]


def outlier_scores(unit: torch.Tensor, k: int = OUTLIER_K) -> np.ndarray:
    """Mean cosine distance of each row to its ``k`` nearest other rows."""
    n = len(unit)
    if n <= 1:
        return np.zeros(n)
    k = min(k, n - 1)
    out = []
    for start in range(0, n, 2048):
        sim = unit[start : start + 2048] @ unit.T
        rows = torch.arange(len(sim))
        sim[rows, rows + start] = -2.0  # not its own neighbour
        out.append((1 - sim.topk(k, dim=1).values).mean(1))
    return torch.cat(out).numpy()


def _robust_z(x: np.ndarray) -> np.ndarray:
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826
    return (x - med) / max(mad, 1e-9)


def audit(
    data: str | Path,
    test: str | Path | None = None,
    backbone: str = "efficientnet_lite0",
    image_size: int | None = None,
    cache_dir: str | Path | None = None,
    threshold: float = DUPLICATE_COSINE,
    ratio: float = NEAR_RATIO,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> AuditResult:
    """Audit the image folder ``data`` (and its test folder ``test``); see the module docstring.

    Args:
        cache_dir: the feature cache (None: in memory); ``finetune --cache-dir`` with the same
            directory, backbone and image size reuses the features.
        threshold: the feature cosine similarity from which two images are near-duplicates.
        ratio: the thumbnail distance ratio up to which two images are near-identical.
        progress, on_start: the feature extraction's progress (images done; images to do).
    """
    from transfer.backbones import create_backbone
    from transfer.config import FinetuneConfig
    from transfer.features import FeatureCache
    from transfer.preprocess import PreprocessModule

    if not 0 < threshold <= 1:
        raise DataError(f"threshold must be in (0, 1], got {threshold}")
    if not 0 <= ratio < 1:
        raise DataError(f"ratio must be in [0, 1), got {ratio}")
    if test is not None and Path(test).resolve() == Path(data).resolve():
        raise DataError(f"DATA and TEST are the same folder ({str(data)!r}): give two folders")
    real = load_folder(data)
    held = load_folder(test) if test is not None else None
    both = real if held is None else _concat(real, held)
    n = len(real)
    split = ["data"] * n + ["test"] * (len(both) - n)
    class_of = [both.classes[int(y)] for y in both.labels]

    config = FinetuneConfig(backbone=backbone, image_size=image_size)
    net = create_backbone(backbone)
    pre = PreprocessModule(config.preprocessing(net))
    cache = FeatureCache(cache_dir)
    if on_start is not None:
        on_start(len(both))
    from transfer.stages import device_name

    feats = cache.features(net, pre, both, 1, device=device_name(), progress=progress)[0]
    unit = torch.nn.functional.normalize(feats.float(), dim=1)

    # duplicates: exact, near-identical, near-duplicate pairs -> clusters
    keys = both.content_keys()
    kinds: dict[tuple[int, int], tuple[str, float]] = {}
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in first:
            kinds[(first[key], i)] = ("exact", 1.0)
        else:
            first[key] = i
    unique = sorted(first.values())  # exact copies are joined above: compare distinct images
    thumbs = thumbnails([both.images[i] for i in unique])
    for a, b, sim in _pairs_ratio(thumbs, ratio, NEAR_MIN_COSINE):
        kinds.setdefault((unique[a], unique[b]), ("near-identical", sim))
    for i, j, s in _pairs_cosine(unit, threshold):
        kinds.setdefault((i, j), ("near-duplicate", s))
    uf = _UnionFind(len(both))
    for i, j in kinds:
        uf.union(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(both)):
        groups.setdefault(uf.find(i), []).append(i)
    clusters: list[dict[str, Any]] = []
    for members in (m for m in groups.values() if len(m) > 1):
        pairs = [(i, j, *kinds[(i, j)]) for (i, j) in kinds if i in members and j in members]
        clusters.append(
            {
                "members": [
                    {"split": split[i], "path": both.sources[i], "class": class_of[i]}
                    for i in members
                ],
                "pairs": [
                    {"a": both.sources[i], "b": both.sources[j], "kind": kind, "similarity": s}
                    for i, j, kind, s in sorted(pairs)
                ],
                "leak": len({split[i] for i in members}) > 1,
                "conflict": len({class_of[i] for i in members}) > 1,
                "_index": members,
            }
        )
    clusters.sort(key=lambda c: (not c["leak"], not c["conflict"], c["_index"][0]))

    # label suspects (DATA only) and outliers
    roots = np.array([uf.find(i) for i in range(n)])
    probs, notes = label_suspects(feats[:n], real.labels, real.classes, seed, roots)
    suspects = []
    for rank, i in enumerate(confident_errors(probs, real.labels)):
        p = probs[i].copy()
        given = int(real.labels[i])
        p_given = float(p[given])
        p[given] = -1
        best = int(p.argmax())
        suspects.append(
            {
                "rank": rank + 1,
                "path": real.sources[i],
                "given": real.classes[given],
                "p_given": p_given,
                "suggested": real.classes[best],
                "p_suggested": float(p[best]),
                "_index": int(i),
            }
        )
    scores = outlier_scores(unit[:n])
    z = _robust_z(scores)
    outliers = [
        {"path": real.sources[i], "class": class_of[i], "score": float(scores[i]),
         "z": float(z[i]), "_index": int(i)}
        for i in np.argsort(-z) if z[i] > OUTLIER_Z
    ]  # fmt: skip
    facts = folder_facts(real)
    if held is not None:
        facts["test_images"] = len(held)
        facts["test_per_class"] = held.counts()
    result = AuditResult(
        str(data),
        str(test) if test is not None else None,
        facts,
        clusters,
        suspects,
        outliers,
        notes,
        real.skipped + (held.skipped if held is not None else []),
        {
            "backbone": backbone,
            "image_size": pre.input_size,
            "duplicate_cosine": threshold,
            "near_ratio": ratio,
            "near_min_cosine": NEAR_MIN_COSINE,
            "folds": FOLDS,
            "outlier_k": OUTLIER_K,
            "outlier_z": OUTLIER_Z,
            "seed": seed,
        },
        both,
    )
    return result


def _concat(a: LabelledImages, b: LabelledImages) -> LabelledImages:
    """``a`` then ``b`` under the union of their class names (by name)."""
    classes = list(a.classes) + [c for c in b.classes if c not in a.classes]
    labels = np.concatenate(
        [a.labels, np.array([classes.index(b.classes[int(y)]) for y in b.labels], dtype=int)]
    )
    return LabelledImages(a.images + b.images, labels, classes, a.sources + b.sources)


def _thumb(image: np.ndarray, side: int = 64) -> np.ndarray:
    from PIL import Image

    img = image if image.shape[2] == 3 else np.repeat(image[:, :, :1], 3, axis=2)
    im = Image.fromarray(img).convert("RGB")
    im.thumbnail((side, side))
    canvas = np.full((side, side, 3), 255, np.uint8)
    arr = np.asarray(im)
    y, x = (side - arr.shape[0]) // 2, (side - arr.shape[1]) // 2
    canvas[y : y + arr.shape[0], x : x + arr.shape[1]] = arr
    return canvas


def _grid(rows: list[list[np.ndarray]], path: Path, side: int = 64) -> bool:
    """Rows of thumbnails (ragged rows padded white), 4 px apart; False when there are none."""
    from augmentor.io import save_image

    if not rows:
        return False
    width = max(len(r) for r in rows)
    gap = 4
    canvas = np.full((len(rows) * (side + gap) + gap, width * (side + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = gap + r * (side + gap), gap + c * (side + gap)
            canvas[y : y + side, x : x + side] = _thumb(img, side)
    save_image(path, canvas)
    return True


def write_report(result: AuditResult, out: str | Path, shown: int = SUSPECTS_SHOWN) -> Path:
    """``out/report.md`` with thumbnail grids, and ``out/audit.json`` with every finding."""
    from augmentor.io import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    both = result.images
    if both is None:
        raise ValueError("the report needs the audited images (an AuditResult from audit())")
    c, f = result.counts(), result.facts
    md = [f"# Audit of {result.data}", ""]
    md += ["```", result.summary(), "```", ""]
    md += ["## The folder", "", "| class | images |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in f["per_class"].items()]
    sizes = ", ".join(f"{k} ({v})" for k, v in f["sizes"].items())
    md += [
        "",
        f"Imbalance (largest class / smallest): {f['imbalance']:.2f}. Sizes: {sizes}"
        f"{' and others' if f['distinct_sizes'] > len(f['sizes']) else ''}. Modes: "
        f"{', '.join(f'{k} ({v})' for k, v in f['modes'].items())}. EXIF-rotated: "
        f"{f['exif_rotated']}.",
        "",
    ]
    s = result.settings
    md += [
        "## Duplicates, leaks and conflicts",
        "",
        f"Exact: identical pixels; near-identical: 8x8 grey thumbnails whose nearest is at most "
        f"{s['near_ratio']} times as far as the next (cosine >= {s['near_min_cosine']}); "
        f"near-duplicate: {s['backbone']} features at {s['image_size']} px with "
        f"cosine similarity >= {s['duplicate_cosine']} (measured, BENCHMARKS.md). "
        f"{c['duplicate_clusters']} clusters of duplicates in DATA ({c['redundant_images']} "
        f"redundant images), {c['leaks']} leaks, {c['conflicts']} conflicts.",
        "",
    ]
    for name, rows_of, title in (
        ("leaks.png", result.leaks, "Leaks (each row one cluster; DATA and TEST images)"),
        ("conflicts.png", result.conflicts, "Conflicts (each row one cluster)"),
        ("duplicates.png", result.duplicates, "Duplicate clusters in DATA"),
    ):
        rows = [[both.images[i] for i in cl["_index"]] for cl in rows_of[:shown]]
        if _grid(rows, out / name):
            md += [f"{title}:", "", f"![{title}]({name})", ""]
            md += ["| row | images (split, class, path) | kind |", "|---|---|---|"]
            for r, cl in enumerate(rows_of[:shown]):
                who = "; ".join(f"{m['split']} {m['class']} `{m['path']}`" for m in cl["members"])
                kinds = ", ".join(sorted({p["kind"] for p in cl["pairs"]}))
                md.append(f"| {r + 1} | {who} | {kinds} |")
            md.append("")
    md += [
        "## Likely label errors",
        "",
        f"Out-of-fold probabilities of a linear probe ({s['folds']}-fold, stratified) on the "
        "same features; confident learning flags an image when another class is as likely as "
        "that class's typical image and its own label is not. Each row: the suspect, then the "
        "three nearest images of the class the model prefers.",
        "",
    ]
    real_n = f["images"]
    labels = both.labels[:real_n]
    shown_suspects = result.suspects[:shown]
    if shown_suspects:
        rows = []
        for sus in shown_suspects:
            i = sus["_index"]
            pool = np.flatnonzero(labels == both.classes.index(sus["suggested"]))
            near = _nearest(both, i, pool, 3)
            rows.append([both.images[i]] + [both.images[j] for j in near])
        _grid(rows, out / "suspects.png")
        md += ["![label suspects](suspects.png)", ""]
        md += ["| rank | image | labelled | p | looks like | p |", "|---|---|---|---|---|---|"]
        md += [
            f"| {x['rank']} | `{x['path']}` | {x['given']} | {x['p_given']:.2f} | "
            f"{x['suggested']} | {x['p_suggested']:.2f} |"
            for x in shown_suspects
        ]
        md.append("")
    else:
        md += ["None found.", ""]
    md += [
        "## Outliers",
        "",
        f"Mean cosine distance to the {s['outlier_k']} nearest images, robust z-score above "
        f"{s['outlier_z']}.",
        "",
    ]
    if result.outliers:
        _grid([[both.images[o["_index"]] for o in result.outliers[:shown]]], out / "outliers.png")
        md += ["![outliers](outliers.png)", ""]
        md += [f"- `{o['path']}` ({o['class']}, z {o['z']:.1f})" for o in result.outliers[:shown]]
        md.append("")
    else:
        md += ["None found.", ""]
    if result.notes or result.skipped:
        md += ["## Notes", ""]
        md += [f"- {n}" for n in result.notes]
        md += [f"- unreadable: `{p}` ({why})" for p, why in result.skipped]
        md.append("")
    atomic_write_text(out / "report.md", "\n".join(md))
    atomic_write_text(out / "audit.json", json.dumps(_public(result.to_dict()), indent=2))
    return out / "report.md"


def _nearest(data: LabelledImages, i: int, pool: np.ndarray, k: int) -> list[int]:
    """The ``k`` images of ``pool`` nearest to image ``i`` in pixels (thumbnails only)."""
    pool = pool[pool != i]
    if not len(pool):
        return []

    def vec(j: int) -> np.ndarray:
        return _thumb(data.images[j], 16).astype(np.float32).ravel()

    target = vec(i)
    dist = np.array([np.abs(vec(j) - target).mean() for j in pool])
    return pool[np.argsort(dist)[:k]].tolist()


def _public(obj: Any) -> Any:
    """Drop the private ``_index`` keys (positions in this process's arrays)."""
    if isinstance(obj, dict):
        return {k: _public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_public(v) for v in obj]
    return obj


def write_clean(result: AuditResult, dst: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """A cleaned copy of DATA in ``dst``: each duplicate cluster collapsed to its first DATA
    image, every DATA image of a leak or a conflict left out; ``dst/left_out.jsonl`` lists what
    was left out and why. Written to a temporary sibling and renamed, so ``dst`` is complete
    or absent; DATA is only read."""
    from augmentor.io import atomic_write_text

    dst = Path(dst)
    data_root = Path(result.data).resolve()
    if dst.resolve() == data_root or data_root in dst.resolve().parents:
        raise DataError(f"--write-clean {str(dst)!r} is inside DATA: give another folder")
    if dst.exists() and not overwrite:
        raise DataError(f"{str(dst)!r} exists: remove it or pass --overwrite")
    why: dict[str, str] = {}
    for cl in result.clusters:
        data_members = [m for m in cl["members"] if m["split"] == "data"]
        for m in data_members:
            if cl["leak"]:
                why[m["path"]] = "leak: the same image is in TEST"
            elif cl["conflict"]:
                why[m["path"]] = "conflict: the same image under two classes"
        if not cl["leak"] and not cl["conflict"]:
            for m in data_members[1:]:
                why[m["path"]] = f"duplicate of {data_members[0]['path']}"
    tmp = dst.parent / f".tmp-{dst.name}-{uuid.uuid4().hex[:8]}"
    kept = 0
    try:
        both = result.images
        if both is None:
            raise ValueError("write_clean needs an AuditResult from audit()")
        for src in both.sources[: result.facts["images"]]:
            if src in why:
                continue
            rel = Path(src).resolve().relative_to(data_root)
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(src, tmp / rel)
            except OSError as e:
                raise DataError(f"--write-clean: cannot copy {src} ({e.strerror})") from None
            kept += 1
        tmp.mkdir(parents=True, exist_ok=True)
        rows = [json.dumps({"path": p, "why": w}) for p, w in sorted(why.items())]
        atomic_write_text(tmp / "left_out.jsonl", "\n".join(rows) + ("\n" if rows else ""))
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"kept": kept, "left_out": len(why), "folder": str(dst)}
