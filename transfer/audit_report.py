"""What an audit writes: ``report.md`` with thumbnail grids of every finding and
``audit.json`` (:func:`write_report`), and a cleaned copy of the data (:func:`write_clean`)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from transfer.audit import SUSPECTS_SHOWN, AuditResult
from transfer.errors import DataError
from transfer.images import LabelledImages

__all__ = ["write_clean", "write_report"]


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
