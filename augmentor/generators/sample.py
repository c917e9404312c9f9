"""Sample a saved generator into a labelled image folder: manifest, atomic writes, resume.

Image ``k`` of class ``c`` comes from chunk ``k // CHUNK``, sampled with the generator of
``(seed, "generator-sample", c, chunk)`` (:mod:`augmentor.seeding`): the folder is a pure
function of (generator, seed, per_class), so an interrupted run resumes by skipping the chunks
whose files are all there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmentor.generators.common import GeneratorError
from augmentor.generators.registry import load_generator
from augmentor.io import Manifest, atomic_write_text, remove_temporaries, safe_name, save_image
from augmentor.seeding import torch_generator

CHUNK = 32
RUN_FILE = "run.json"
MAX_DRAWS = 50  # per chunk, with a filter: then the band is too narrow for this class


@dataclass
class SampleReport:
    dst: Path
    written: int
    already_done: int
    seconds: float
    acceptance: dict[str, float] | None = None  # per class, with a filter

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def sample_folder(
    generator_dir: str | Path,
    dst: str | Path,
    per_class: int,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    accept: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    accept_name: str | None = None,
) -> SampleReport:
    """Write ``per_class`` synthetic images of every class to ``dst/<class>/``.

    Args:
        accept: optional filter: ``(uint8 images, labels) -> bool mask`` of the samples to
            keep (for example, a classifier trained on the real data agrees with the label with
            a confidence inside a band). Rejected samples are replaced by further seeded draws;
            the acceptance rate per class is returned and written to ``filter.json``.
        accept_name: how the filter is described in ``run.json`` (part of the settings).
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise GeneratorError(f"per_class must be an integer >= 1, got {per_class!r}")
    gen = load_generator(generator_dir, device)
    dst = Path(dst)
    run = {
        "tool": "augment sample",
        "generator": str(Path(generator_dir).resolve()),
        "fingerprint": gen.meta.get("data_fingerprint"),
        "seed": seed,
        "per_class": per_class,
        "kind": gen.kind,
        "filter": accept_name if accept is not None else None,
    }
    run_path = dst / RUN_FILE
    if run_path.is_file():
        old = json.loads(run_path.read_text())
        if old != run:
            raise GeneratorError(
                f"DST {str(dst)!r} holds a run with other settings ({RUN_FILE}); choose an "
                "empty folder"
            )
    dst.mkdir(parents=True, exist_ok=True)
    remove_temporaries(dst)
    atomic_write_text(run_path, json.dumps(run, indent=2))
    chunks = [(c, k) for c in range(gen.num_classes) for k in range(0, per_class, CHUNK)]

    def names(c: int, k: int) -> list[Path]:
        cls = safe_name(gen.class_names[c])
        return [dst / cls / f"syn_{i:06d}.png" for i in range(k, min(k + CHUNK, per_class))]

    todo = [(c, k) for c, k in chunks if not all(p.is_file() for p in names(c, k))]
    done = gen.num_classes * per_class - sum(len(names(c, k)) for c, k in todo)
    if on_start is not None:
        on_start(gen.num_classes * per_class - done, done)
    written = 0
    drawn = np.zeros(gen.num_classes, np.int64)
    kept = np.zeros(gen.num_classes, np.int64)
    t = time.perf_counter()
    with Manifest(dst / "manifest.jsonl") as manifest:
        for c, k in todo:
            paths = names(c, k)
            if accept is None:
                imgs = gen.sample(len(paths), labels=[c] * len(paths), generator=_gen(seed, c, k))
            else:
                imgs = _filtered(gen, accept, c, k, len(paths), seed, drawn, kept)
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
    acceptance = None
    if accept is not None:
        acceptance = {
            name: float(kept[i] / drawn[i]) for i, name in enumerate(gen.class_names) if drawn[i]
        }
        atomic_write_text(
            dst / "filter.json",
            json.dumps(
                {
                    "filter": accept_name,
                    "acceptance": acceptance,
                    "drawn": dict(zip(gen.class_names, drawn.tolist())),
                    "kept": dict(zip(gen.class_names, kept.tolist())),
                },
                indent=2,
            ),
        )
    return SampleReport(dst, written, done, time.perf_counter() - t, acceptance)


def _gen(seed: int, c: int, k: int, attempt: int | None = None) -> torch.Generator:
    """Chunk ``k`` of class ``c`` (and its filtered attempts, each its own stream)."""
    return torch_generator(seed, "generator-sample", c, k, 0 if attempt is None else attempt + 1)


def _filtered(
    gen: Any,
    accept: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    c: int,
    k: int,
    m: int,
    seed: int,
    drawn: np.ndarray,
    kept: np.ndarray,
) -> torch.Tensor:
    """``m`` accepted samples of class ``c``, drawn CHUNK at a time with seeded attempts."""
    got: list[torch.Tensor] = []
    n_got = 0
    for attempt in range(MAX_DRAWS):
        labels = torch.full((CHUNK,), c, dtype=torch.long)
        imgs = gen.sample(CHUNK, labels=labels, generator=_gen(seed, c, k, attempt))
        mask = torch.as_tensor(accept(imgs, labels), dtype=torch.bool)
        drawn[c] += CHUNK
        kept[c] += int(mask.sum())
        got.append(imgs[mask])
        n_got += int(mask.sum())
        if n_got >= m:
            return torch.cat(got)[:m]
    raise GeneratorError(
        f"class {gen.class_names[c]!r}: only {kept[c]} of {drawn[c]} samples "
        f"({kept[c] / max(1, drawn[c]):.1%}) pass the filter; widen the confidence band"
    )
