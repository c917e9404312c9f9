"""Sample a saved generator into a labelled image folder: manifest, atomic writes, resume.

Image ``k`` of class ``c`` comes from chunk ``k // CHUNK``, sampled with a generator seeded by
``(seed, c, chunk)``: the folder is a pure function of (generator, seed, per_class), so an
interrupted run resumes by skipping the chunks whose files are all there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from augmentor.generators import load_generator
from augmentor.generators.common import GeneratorError
from augmentor.io import Manifest, atomic_write_text, remove_temporaries, safe_name, save_image

CHUNK = 32
RUN_FILE = "run.json"


@dataclass
class SampleReport:
    dst: Path
    written: int
    already_done: int
    seconds: float

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
) -> SampleReport:
    """Write ``per_class`` synthetic images of every class to ``dst/<class>/``."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise GeneratorError(f"per_class must be an integer >= 1, got {per_class!r}")
    gen = load_generator(generator_dir, device)
    dst = Path(dst)
    run = {
        "tool": "augment generate",
        "generator": str(Path(generator_dir).resolve()),
        "fingerprint": gen.meta.get("data_fingerprint"),
        "seed": seed,
        "per_class": per_class,
        "kind": gen.kind,
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
    t = time.perf_counter()
    with Manifest(dst / "manifest.jsonl") as manifest:
        for c, k in todo:
            paths = names(c, k)
            g = torch.Generator(device=device).manual_seed(
                int(np.random.SeedSequence([seed, c, k]).generate_state(1)[0])
            )
            imgs = gen.sample(len(paths), labels=[c] * len(paths), generator=g)
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
    return SampleReport(dst, written, done, time.perf_counter() - t)
