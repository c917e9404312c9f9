"""Audit a small labelled image folder before training on it: duplicates, train/test leaks,
the same image under two classes, likely label errors, outliers and the folder's own facts.

Nothing in the data is changed; :func:`transfer.audit_report.write_clean` writes a cleaned
copy. How each finding is
made (the thresholds were measured, ``benchmarks/audit.py`` and BENCHMARKS.md); what it
writes is :mod:`transfer.audit_report` (this module is ~500 lines because every step indexes
the same DATA + TEST arrays and shares the duplicate clusters):

* **exact**: identical decoded pixels (the content hash the feature cache keys on);
* **near-identical**: a perceptual thumbnail (the 8x8 grey image, mean and contrast removed)
  whose nearest other thumbnail is much nearer than the next one: distance ratio at most
  :data:`NEAR_RATIO` (Lowe's ratio test) and cosine at least :data:`NEAR_MIN_COSINE`. A
  resized, re-encoded or slightly cropped copy passes; two distinct but similar images (two
  plain trousers) do not, because each has several neighbours that close;
* **near-duplicate**: cosine similarity of the backbone's pooled features at least
  :data:`DUPLICATE_COSINE`;
* pairs join into clusters (:func:`cluster_pairs`: union-find, with complete linkage for
  near-duplicate pairs so that chains of similar images do not merge); a cluster with members
  in DATA and TEST is a **leak**, one whose members carry different classes a **conflict**;
* **label suspects**: out-of-fold probabilities of a linear probe on the cached features
  (stratified k-fold), then confident learning (Northcutt et al. 2021): an image is suspect
  when another class's probability reaches that class's mean self-confidence and its own
  label's does not; ranked by the given label's probability;
* **outliers**: the mean cosine distance to the :data:`OUTLIER_K` nearest images, with a robust
  z-score (median and MAD over the folder) above :data:`OUTLIER_Z`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfer.copies import NEAR_MIN_COSINE, NEAR_RATIO, thumbnails
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
]

# measured on planted copies against distinct images of three training pools (BENCHMARKS.md)
DUPLICATE_COSINE = 0.97  # feature cosine similarity at least this: near-duplicate
OUTLIER_K = 5
OUTLIER_Z = 5.0
FOLDS = 5
SUSPECTS_SHOWN = 20


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


_KIND_ORDER = {"exact": 0, "near-identical": 1, "near-duplicate": 2}


def cluster_pairs(
    kinds: dict[tuple[int, int], tuple[str, float]], unit: torch.Tensor, threshold: float
) -> _UnionFind:
    """Join duplicate pairs into clusters: exact and near-identical pairs always join; a
    near-duplicate pair (feature cosine) joins its two clusters only if *every* image of one
    is that similar to every image of the other (complete linkage). Plain union-find chained
    plain grey pullovers of the full Fashion-MNIST, each similar to the next, into one
    cluster of ~50 distinct garments (BENCHMARKS.md), which ``--write-clean`` would have
    collapsed to one image. Pairs are taken strongest first, so the result does not depend on
    their order.
    """
    uf = _UnionFind(len(unit))
    members: dict[int, list[int]] = {}
    order = sorted(kinds, key=lambda ij: (_KIND_ORDER[kinds[ij][0]], -kinds[ij][1], ij))
    for i, j in order:
        ri, rj = uf.find(i), uf.find(j)
        if ri == rj:
            continue
        a, b = members.get(ri, [ri]), members.get(rj, [rj])
        if kinds[(i, j)][0] == "near-duplicate":
            if float((unit[a] @ unit[b].T).min()) < threshold:
                continue
        uf.union(ri, rj)
        root = uf.find(ri)
        members.pop(ri, None)
        members.pop(rj, None)
        members[root] = a + b
    return uf


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
    from transfer.probe import fit_linear_probe
    from transfer.splits import stratified_folds

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
    uf = cluster_pairs(kinds, unit, threshold)
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
