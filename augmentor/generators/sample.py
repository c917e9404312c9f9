"""Write a saved generator's images into a labelled image folder: manifest, atomic writes,
resume, an optional filter. Two modes, one contract:

* :func:`sample_folder`: ``per_class`` samples of every class. Image ``k`` of class ``c`` comes
  from chunk ``k // CHUNK``, drawn with the generator of ``(seed, "generator-sample", c,
  chunk)``.
* :func:`vary_folder`: ``per_image`` variations of every image of a real folder (the VAE's
  posterior or slerp, the diffusion model's SDEdit), each named after and keyed by its source:
  the variations of a source come from ``(seed, "variation", its content)``, so a changed
  source gets new variations and the stale ones are removed.

Either folder is a pure function of its settings: an interrupted run resumes by skipping what
is written. With a filter, rejected images are replaced by further seeded draws, and
``filter.json`` gives the acceptance per class and the rejections per reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmentor.generators.common import GeneratorError
from augmentor.generators.registry import LoadedGenerator, load_generator
from augmentor.io import (
    Manifest,
    atomic_write_text,
    class_folder_names,
    remove_temporaries,
    save_image,
)
from augmentor.seeding import torch_generator

__all__ = ["CHUNK", "FilterVerdict", "SampleReport", "sample_folder", "vary_folder"]

CHUNK = 32
RUN_FILE = "run.json"
MAX_DRAWS = 50  # per chunk or source, with a filter: then the filter is too strict for it


@dataclass
class FilterVerdict:
    """What a filter says of a batch: which samples it keeps, and why each other one is not."""

    accepted: torch.Tensor  # bool (N,)
    reasons: list[str | None]  # None for an accepted sample


Filter = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | FilterVerdict"]


@dataclass
class SampleReport:
    dst: Path
    written: int
    already_done: int
    seconds: float
    acceptance: dict[str, float] | None = None  # per class, with a filter
    rejected: dict[str, int] = field(default_factory=dict)  # per reason, with a filter
    removed: int = 0  # stale outputs of sources that changed or went away

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


class _Acceptance:
    """Counts drawn and kept samples per class and rejections per reason."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = classes
        self.drawn = np.zeros(len(classes), np.int64)
        self.kept = np.zeros(len(classes), np.int64)
        self.reasons: dict[str, int] = {}

    def judge(self, accept: Filter, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        verdict = accept(images, labels)
        if isinstance(verdict, FilterVerdict):
            mask = torch.as_tensor(verdict.accepted, dtype=torch.bool)
            for reason in verdict.reasons:
                if reason is not None:
                    self.reasons[reason] = self.reasons.get(reason, 0) + 1
        else:
            mask = torch.as_tensor(verdict, dtype=torch.bool)
        for c in labels.unique().tolist():
            sel = labels == c
            self.drawn[c] += int(sel.sum())
            self.kept[c] += int(mask[sel].sum())
        return mask

    def fail(self, c: int, what: str) -> GeneratorError:
        rate = self.kept[c] / max(1, self.drawn[c])
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items()))
        return GeneratorError(
            f"class {self.classes[c]!r}: only {self.kept[c]} of {self.drawn[c]} {what} "
            f"({rate:.1%}) pass the filter (rejected: {why or 'none'}); widen the confidence "
            "band or change the generator"
        )

    def write(self, dst: Path, name: str | None) -> dict[str, float]:
        acceptance = {
            c: float(self.kept[i] / self.drawn[i])
            for i, c in enumerate(self.classes)
            if self.drawn[i]
        }
        atomic_write_text(
            dst / "filter.json",
            json.dumps(
                {
                    "filter": name,
                    "acceptance": acceptance,
                    "drawn": dict(zip(self.classes, self.drawn.tolist())),
                    "kept": dict(zip(self.classes, self.kept.tolist())),
                    "rejected": dict(sorted(self.reasons.items())),
                },
                indent=2,
            ),
        )
        return acceptance


def _claim(dst: Path, run: dict[str, Any]) -> None:
    """Refuse a DST written with other settings; record the settings."""
    run_path = dst / RUN_FILE
    if run_path.is_file():
        try:
            old = json.loads(run_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old != run:
            raise GeneratorError(
                f"DST {str(dst)!r} holds a run with other settings ({RUN_FILE}); choose an "
                "empty folder"
            )
    dst.mkdir(parents=True, exist_ok=True)
    remove_temporaries(dst)
    atomic_write_text(run_path, json.dumps(run, indent=2))


def sample_folder(
    generator_dir: str | Path,
    dst: str | Path,
    per_class: int,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    accept: Filter | None = None,
    accept_name: str | None = None,
) -> SampleReport:
    """Write ``per_class`` synthetic images of every class to ``dst/<class>/``.

    Args:
        accept: optional filter: ``(uint8 images, labels) -> bool mask`` (or a
            :class:`FilterVerdict` with the reason of each rejection) of the samples to keep.
            Rejected samples are replaced by further seeded draws; the acceptance per class
            is returned and written to ``filter.json``.
        accept_name: how the filter is described in ``run.json`` (part of the settings).
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise GeneratorError(f"per_class must be an integer >= 1, got {per_class!r}")
    gen = load_generator(generator_dir, device)
    dst = Path(dst)
    folders = class_folder_names(gen.class_names, error=GeneratorError)
    _claim(
        dst,
        {
            "tool": "augment sample",
            "generator": str(Path(generator_dir).resolve()),
            "fingerprint": gen.meta.get("data_fingerprint"),
            "seed": seed,
            "per_class": per_class,
            "kind": gen.kind,
            "filter": accept_name if accept is not None else None,
        },
    )
    chunks = [(c, k) for c in range(gen.num_classes) for k in range(0, per_class, CHUNK)]

    def names(c: int, k: int) -> list[Path]:
        folder = folders[gen.class_names[c]]
        return [dst / folder / f"syn_{i:06d}.png" for i in range(k, min(k + CHUNK, per_class))]

    todo = [(c, k) for c, k in chunks if not all(p.is_file() for p in names(c, k))]
    done = gen.num_classes * per_class - sum(len(names(c, k)) for c, k in todo)
    if on_start is not None:
        on_start(gen.num_classes * per_class - done, done)
    written = 0
    tally = _Acceptance(gen.class_names)
    t = time.perf_counter()
    with Manifest(dst / "manifest.jsonl") as manifest:
        for c, k in todo:
            paths = names(c, k)
            if accept is None:
                imgs = gen.sample(len(paths), labels=[c] * len(paths), generator=_gen(seed, c, k))
            else:
                imgs = _filtered(gen, accept, tally, c, k, len(paths), seed)
            for p, img in zip(paths, imgs):
                save_image(p, np.ascontiguousarray(img.permute(1, 2, 0).numpy()))
                manifest.append(
                    {
                        "output": str(p.relative_to(dst)),
                        "class": gen.class_names[c],
                        "label": c,
                        "seed": seed,
                        "chunk": k,
                    }
                )
            written += len(paths)
            if progress is not None:
                progress(len(paths))
    acceptance = tally.write(dst, accept_name) if accept is not None else None
    return SampleReport(
        dst, written, done, time.perf_counter() - t, acceptance, dict(tally.reasons)
    )


def _gen(seed: int, c: int, k: int, attempt: int | None = None) -> torch.Generator:
    """Chunk ``k`` of class ``c`` (and its filtered attempts, each its own stream)."""
    return torch_generator(seed, "generator-sample", c, k, 0 if attempt is None else attempt + 1)


def _filtered(
    gen: LoadedGenerator, accept: Filter, tally: _Acceptance, c: int, k: int, m: int, seed: int
) -> torch.Tensor:
    """``m`` accepted samples of class ``c``, drawn CHUNK at a time with seeded attempts."""
    got: list[torch.Tensor] = []
    n_got = 0
    for attempt in range(MAX_DRAWS):
        labels = torch.full((CHUNK,), c, dtype=torch.long)
        imgs = gen.sample(CHUNK, labels=labels, generator=_gen(seed, c, k, attempt))
        mask = tally.judge(accept, imgs, labels)
        got.append(imgs[mask])
        n_got += int(mask.sum())
        if n_got >= m:
            return torch.cat(got)[:m]
    raise tally.fail(c, "samples")


def vary_folder(
    generator_dir: str | Path,
    like: str | Path,
    dst: str | Path,
    per_image: int,
    strength: float,
    seed: int = 0,
    method: str | None = None,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    accept: Filter | None = None,
    accept_name: str | None = None,
    strict: bool = True,
) -> SampleReport:
    """Write ``per_image`` variations of every image of the real folder ``like`` to
    ``dst/<class>/<source stem>-<key>-v<k>.png``.

    ``like``'s images are converted to the generator's size and channels as its training
    images were; its classes must be the generator's (a class it does not know is an error).
    The manifest names each output's source (path and content key), which fine-tuning uses to
    replace a real image by one of its own variations (``FinetuneConfig.synthetic_mode``).
    Outputs of sources that changed or went away since an earlier run are removed. With a
    filter, a class none of whose variations passes is an error (``strict``), or is reported in
    ``filter.json`` and left without synthetic images.
    """
    from augmentor.generators.config import GeneratorError as _Error
    from augmentor.generators.data import load_training_data

    if isinstance(per_image, bool) or not isinstance(per_image, int) or per_image < 1:
        raise _Error(f"per_image must be an integer >= 1, got {per_image!r}")
    gen = load_generator(generator_dir, device)
    method = method or ("sdedit" if gen.kind == "diffusion" else "posterior")
    real = load_training_data(like, gen.image_size, gen.channels, min_per_class=1)
    unknown = sorted(set(real.class_names) - set(gen.class_names))
    if unknown:
        raise _Error(
            f"--like {str(like)!r} has classes the generator does not know: "
            f"{', '.join(unknown)} (it knows: {', '.join(gen.class_names)})"
        )
    gen.vary(torch.zeros(0, gen.channels, gen.image_size, gen.image_size, dtype=torch.uint8),
             [], 1, strength, method=method)  # fmt: skip  # checks strength and method first
    dst = Path(dst)
    folders = class_folder_names(gen.class_names, error=_Error)
    _claim(
        dst,
        {
            "tool": "augment sample --like",
            "generator": str(Path(generator_dir).resolve()),
            "fingerprint": gen.meta.get("data_fingerprint"),
            "like": str(Path(like).resolve()),
            "seed": seed,
            "per_image": per_image,
            "strength": strength,
            "method": method,
            "kind": gen.kind,
            "filter": accept_name if accept is not None else None,
        },
    )
    images = ((real.images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    labels = torch.tensor([gen.class_names.index(real.class_names[int(y)]) for y in real.labels])

    def names(i: int) -> list[Path]:
        folder = folders[gen.class_names[int(labels[i])]]
        stem = Path(real.sources[i]).stem
        return [dst / folder / f"{stem}-{real.keys[i][:8]}-v{k:02d}.png" for k in range(per_image)]

    planned = {p for i in range(len(labels)) for p in names(i)}
    removed = 0
    for folder in set(folders.values()):
        for p in (dst / folder).glob("*-v[0-9][0-9].png"):
            if p not in planned:  # a source that changed or went away
                p.unlink()
                removed += 1
    manifest_path = dst / "manifest.jsonl"
    # a source whose variations the filter kept fewer than per_image of is marked done in the
    # manifest (a resumed run would draw the same attempts again)
    short = {r["source_key"] for r in Manifest(manifest_path).read() if "short" in r}
    todo = [
        i
        for i in range(len(labels))
        if real.keys[i] not in short and not all(p.is_file() for p in names(i))
    ]
    done = len(planned) - per_image * len(todo)
    if on_start is not None:
        on_start(per_image * len(todo), done)
    tally = _Acceptance(gen.class_names)
    like_root = Path(like)
    t = time.perf_counter()
    written = 0
    if removed:  # keep the manifest to the outputs that exist
        keys = set(real.keys)
        kept = [
            r
            for r in Manifest(manifest_path).read()
            if ("output" in r and (dst / r["output"]) in planned)
            or (r.get("source_key") in keys and "short" in r)
        ]
        Manifest(manifest_path).compact(kept)
    pool = {"pool": (images, labels)} if method == "slerp" else {}
    with Manifest(manifest_path) as manifest:
        for i in todo:
            x, y = images[i : i + 1], labels[i : i + 1]
            key = real.keys[i]
            words = (int(key[:8], 16), int(key[8:16], 16))
            if accept is None:
                g = torch_generator(seed, "variation", *words, 0)
                out = gen.vary(x, y, per_image, strength, generator=g, method=method, **pool)
            else:
                out = _varied_filtered(
                    gen, accept, tally, x, y, per_image, strength, method, seed, words, pool
                )
            source = str(Path(real.sources[i]).relative_to(like_root))
            for k, (p, img) in enumerate(zip(names(i), out)):
                save_image(p, np.ascontiguousarray(img.permute(1, 2, 0).numpy()))
                manifest.append(
                    {
                        "output": str(p.relative_to(dst)),
                        "class": gen.class_names[int(y)],
                        "label": int(y),
                        "source": source,
                        "source_key": key,
                        "variation": k,
                        "strength": strength,
                        "method": method,
                        "seed": seed,
                    }
                )
            if len(out) < per_image:
                manifest.append({"source": source, "source_key": key, "short": len(out)})
            written += len(out)
            if progress is not None:
                progress(per_image)
    acceptance = None
    if accept is not None:
        acceptance = tally.write(dst, accept_name)
        for c in range(gen.num_classes):
            if strict and tally.drawn[c] and not tally.kept[c]:
                raise tally.fail(c, "variations")
    return SampleReport(
        dst, written, done, time.perf_counter() - t, acceptance, dict(tally.reasons), removed
    )


VARY_ATTEMPTS = 8  # per source, with a filter: then the source is kept with fewer variations


def _varied_filtered(
    gen: LoadedGenerator,
    accept: Filter,
    tally: _Acceptance,
    x: torch.Tensor,
    y: torch.Tensor,
    m: int,
    strength: float,
    method: str,
    seed: int,
    words: tuple[int, int],
    pool: dict[str, Any],
) -> torch.Tensor:
    """Up to ``m`` accepted variations of one source, drawn ``m`` at a time with seeded
    attempts (fewer when the filter keeps fewer in ``VARY_ATTEMPTS`` attempts)."""
    got: list[torch.Tensor] = []
    n_got = 0
    for attempt in range(VARY_ATTEMPTS):
        g = torch_generator(seed, "variation", *words, attempt)
        imgs = gen.vary(x, y, m, strength, generator=g, method=method, **pool)
        mask = tally.judge(accept, imgs, y.repeat(m))
        got.append(imgs[mask])
        n_got += int(mask.sum())
        if n_got >= m:
            break
    return torch.cat(got)[:m]
