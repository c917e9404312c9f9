"""Folder-level jobs behind ``augment generate`` and ``augment preview``.

``generate_folder`` is resumable and safe: every image is written atomically, the manifest is
appended line by line, and a rerun skips what is finished. Each output is a pure function of
(pipeline seed, output path) (:func:`output_index`), so files are byte-identical whatever the
worker count and however often the run was interrupted, and adding or deleting a source leaves
every other output as it was.

Why one module of ~570 lines: the job plan, the top-ups that keep ``--per-class`` whole, resume
by content, the lock, the worker side and the preview grid share one job model and one folder
scan; split, each piece would import the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from augmentor.io import (
    FORMATS,
    ImageFolder,
    ImageItem,
    ImageReadError,
    Manifest,
    atomic_write_text,
    load_image,
    remove_temporaries,
    save_image,
    scan_image_folder,
)
from augmentor.pipeline import Pipeline

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
RUN_FILE = "run.json"
PIPELINE_FILE = "pipeline.yaml"


@dataclass(frozen=True)
class Job:
    index: int
    source: ImageItem
    source_rel: str  # relative to SRC
    output: str  # relative to DST


@dataclass
class GenerateReport:
    dst: Path
    planned: int = 0
    written: int = 0
    already_done: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # source -> reason
    ignored: list[str] = field(default_factory=list)  # non-image files in SRC
    short: dict[str, int] = field(default_factory=dict)  # class -> written, when < per_class
    removed: list[str] = field(default_factory=list)  # outputs of sources no longer in SRC
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def _check_dst(src: Path, dst: Path) -> None:
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise ValueError(
            f"DST {str(dst)!r} is inside SRC {str(src)!r}; choose a folder outside "
            "it (the output would be read back as input)"
        )
    if d.exists() and not d.is_dir():
        raise ValueError(f"DST {str(dst)!r} exists and is not a directory")


def output_stems(folder: ImageFolder) -> dict[Path, str]:
    """The stem of each source's outputs: its own stem, or ``stem_ext`` where two sources share
    one in the same folder (``a.png`` and ``a.jpg`` side by side)."""
    count: dict[tuple[Path, str], int] = {}
    for it in folder.items:
        key = (it.path.parent, it.path.stem)
        count[key] = count.get(key, 0) + 1
    return {
        it.path: (
            f"{it.path.stem}_{it.path.suffix.lstrip('.').lower()}"
            if count[(it.path.parent, it.path.stem)] > 1
            else it.path.stem
        )
        for it in folder.items
    }


def _job(
    folder: ImageFolder, stems: dict[Path, str], it: ImageItem, k: int, ext: str, index: int
) -> Job:
    """Job ``index``: the ``k``-th augmented copy of ``it``."""
    rel = it.path.relative_to(folder.root)
    return Job(index, it, str(rel), str(rel.parent / f"{stems[it.path]}_aug{k:04d}{ext}"))


def plan_jobs(
    folder: ImageFolder, per_image: int | None, per_class: int | None, ext: str
) -> list[Job]:
    """The deterministic job list: ``per_image`` copies of every image, or ``per_class`` images
    per class drawn round-robin over the class's images."""
    jobs: list[Job] = []
    stems = output_stems(folder)
    for items in folder.by_class().values():
        if per_class is not None:
            count = (
                [
                    per_class // len(items) + (1 if i < per_class % len(items) else 0)
                    for i in range(len(items))
                ]
                if items
                else []
            )
        else:
            count = [per_image or 0] * len(items)
        for it, n in zip(items, count):
            for k in range(n):
                jobs.append(_job(folder, stems, it, k, ext, len(jobs)))
    return jobs


# -- worker side -------------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _init_worker(config: dict[str, Any], dst: str, fmt: str, quality: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # one image per process; threads inside OpenCV only add overhead
    _W.update(
        pipeline=Pipeline.from_config(config),
        dst=Path(dst),
        fmt=fmt,
        quality=quality,
        cache=(None, None),
    )


def _run_job(job: Job) -> tuple[int, str, Any]:
    path = job.source.path
    cached_path, cached = _W["cache"]
    try:
        if cached_path == path:
            if isinstance(cached, Exception):
                raise cached
            image, digest = cached
        else:
            image = load_image(path)
            digest = source_digest(path)
            _W["cache"] = (path, (image, digest))
    except ImageReadError as e:
        _W["cache"] = (path, e)
        return job.index, "skipped", str(e)
    except OSError as e:  # unreadable: permissions, vanished file, ...
        _W["cache"] = (path, ImageReadError(f"cannot read: {e.strerror or e}"))
        return job.index, "skipped", f"cannot read: {e.strerror or e}"
    out, records = _W["pipeline"](image, index=output_index(job.output), return_params=True)
    save_image(_W["dst"] / job.output, out, _W["fmt"], _W["quality"])
    return job.index, "written", (records, digest)


def output_index(output: str) -> int:
    """The sample index an output's augmentation is drawn with: a 32-bit hash of its path in
    DST, not its position in the job list, which shifts when a source is added or deleted."""
    return int.from_bytes(hashlib.sha1(output.encode(), usedforsecurity=False).digest()[:4], "big")


def source_digest(path: Path) -> str:
    """The SHA-1 of a source file's bytes: a resumed run redoes the outputs of a source whose
    content changed (its path alone would keep a stale output)."""
    return hashlib.sha1(Path(path).read_bytes(), usedforsecurity=False).hexdigest()


def generate_folder(
    src: str | Path,
    dst: str | Path,
    pipeline: Pipeline,
    *,
    per_image: int | None = None,
    per_class: int | None = None,
    workers: int = 0,
    fmt: str = "png",
    quality: int = 95,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> GenerateReport:
    """Write augmented copies of the ImageFolder ``src`` into ``dst`` (class folders kept).

    Args:
        per_image: augmented copies of each image; or
        per_class: augmented images per class, round-robin over the class's images.
        workers: processes (0 = in this process).
        progress: called with the number of jobs finished since the last call.
        on_start: called with (jobs to do, jobs already done) once planning is over.

    Raises ``ValueError``/``FileNotFoundError`` before writing anything if the arguments are bad.
    """
    src, dst = Path(src), Path(dst)
    if (per_image is None) == (per_class is None):
        raise ValueError("give exactly one of per_image and per_class")
    for name, v in (("per_image", per_image), ("per_class", per_class)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    if pipeline.returns_tensor:
        raise ValueError(
            "the pipeline ends with normalize (a float tensor); images cannot be "
            "saved from it: drop the normalize op"
        )
    folder = scan_image_folder(src)
    _check_dst(src, dst)
    config = pipeline.get_config()
    run = {
        "tool": "augment generate",
        "version": _version(),
        "seed": pipeline.seed,
        "per_image": per_image,
        "per_class": per_class,
        "format": fmt,
        "quality": quality,
        "source": str(src.resolve()),
        "pipeline": config,
    }
    run_path = dst / RUN_FILE
    if run_path.exists():
        try:
            old = json.loads(run_path.read_text())
        except (OSError, ValueError):
            old = {}
        keys = ("seed", "per_image", "per_class", "format", "quality", "pipeline")
        diff = [k for k in keys if old.get(k) != run.get(k)]
        if diff:
            raise ValueError(
                f"DST {str(dst)!r} holds a run with other settings ({', '.join(diff)}"
                "); use a new DST, or the same settings to resume"
            )

    report = GenerateReport(dst=dst, ignored=[str(p) for p in folder.ignored])
    jobs = plan_jobs(folder, per_image, per_class, FORMATS[fmt])
    report.planned = len(jobs)

    # -- from here on we write --------------------------------------------------------------
    dst.mkdir(parents=True, exist_ok=True)
    lock = _lock(dst)  # before the clean-up below, which would delete another run's temporaries
    remove_temporaries(dst)

    atomic_write_text(run_path, json.dumps(run, indent=2) + "\n")
    pipeline.save(dst / PIPELINE_FILE)
    manifest = Manifest(dst / MANIFEST)
    recorded = {e["output"]: e for e in manifest.read() if isinstance(e.get("output"), str)}
    entries: dict[int, Any] = {}
    digests: dict[Path, str | None] = {}

    def current(path: Path) -> str | None:
        if path not in digests:
            try:
                digests[path] = source_digest(path)
            except OSError:
                digests[path] = None
        return digests[path]

    def split_done(batch: list[Job]) -> list[Job]:
        """Keep the recorded entries of finished jobs whose source is unchanged; return the
        jobs still to do."""
        todo = []
        for j in batch:
            e = recorded.get(j.output)
            if (
                e is not None
                and (dst / j.output).exists()
                and e.get("source_sha1") == current(j.source.path)
            ):
                entries[j.index] = {**e, "index": j.index}
            else:
                todo.append(j)
        return todo

    todo = split_done(jobs)
    report.already_done = len(jobs) - len(todo)
    if on_start is not None:
        on_start(len(todo), report.already_done)
    log.info("generate: %d jobs, %d already done", len(jobs), report.already_done)
    # per_class promises N images per class: a job whose source is unreadable is replaced by a
    # job on a readable image of the same class (a "top-up"), planned from the skipped sources
    # alone, so a resumed run plans exactly the same jobs. A skipped job advances the bar
    # only in per_image mode; in per_class mode its top-up does.
    count_skips = per_class is None

    t0 = time.perf_counter()
    init_args = (config, str(dst), fmt, int(quality))
    try:
        with manifest:
            pool = None
            if workers == 0:
                _init_worker(*init_args)
            else:
                # spawn, not fork: OpenCV's thread pool in this process would deadlock a fork
                pool = mp.get_context("spawn").Pool(
                    workers, initializer=_init_worker, initargs=init_args
                )
            try:
                while True:
                    results = (
                        map(_run_job, todo)
                        if pool is None
                        else pool.imap(_run_job, todo, chunksize=4)
                    )
                    _consume(
                        results,
                        jobs,
                        entries,
                        manifest,
                        report,
                        progress,
                        pipeline.seed,
                        count_skips,
                    )
                    extra = (
                        plan_topups(folder, per_class, jobs, set(report.skipped), FORMATS[fmt])
                        if per_class is not None
                        else []
                    )
                    if not extra:
                        break
                    jobs.extend(extra)
                    report.already_done += len(extra) - len(todo := split_done(extra))
            finally:
                if pool is not None:
                    pool.close()
                    pool.join()
    except BaseException:
        remove_temporaries(dst)
        raise
    finally:
        report.seconds = time.perf_counter() - t0
        lock.close()
    if per_class is not None:
        report.short = _shortfall(jobs, set(report.skipped), per_class)
    # outputs of an earlier run that no job makes any more (their source was deleted or the
    # round-robin changed): only files that run's manifest lists are removed, never others
    planned = {j.output for j in jobs}
    inside = dst.resolve()
    for output in recorded:
        out_path = dst / output
        if output in planned or inside not in out_path.resolve().parents:
            continue  # a tampered manifest never deletes outside DST
        if out_path.is_file() and out_path.suffix in FORMATS.values():
            out_path.unlink()
            report.removed.append(str(out_path))
    manifest.compact(entries[i] for i in sorted(entries))
    return report


LOCK_FILE = ".generate.lock"


def _lock(dst: Path) -> Any:
    """An exclusive lock on DST for this run (``flock``: the system releases it when the
    process ends, however it ends, so a crashed run never leaves a stale lock)."""
    handle = open(dst / LOCK_FILE, "a")
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one run per DST is then the user's to keep
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(
            f"DST {str(dst)!r} is in use by another `augment generate` run; wait for it to "
            "finish (or stop it), then rerun this command to resume"
        ) from None
    return handle


def plan_topups(
    folder: ImageFolder, per_class: int, jobs: list[Job], skipped: set[str], ext: str
) -> list[Job]:
    """Jobs that replace, class by class, every planned job whose source is in ``skipped`` and
    not yet replaced: round-robin over the class's other images (those not known unreadable),
    each continuing its own output numbering. Empty when nothing is left to replace or no
    readable image is left in the class."""
    per_source: dict[Path, int] = {}
    for j in jobs:
        per_source[j.source.path] = per_source.get(j.source.path, 0) + 1
    stems = output_stems(folder)
    out: list[Job] = []
    for items in folder.by_class().values():
        readable = [it for it in items if str(it.path) not in skipped]
        if len(readable) == len(items) or not readable:
            continue
        missing = per_class - sum(per_source.get(it.path, 0) for it in readable)
        # the least-used readable images first, in folder order: a fair, fixed round-robin
        order = sorted(readable, key=lambda it: per_source.get(it.path, 0))
        for i in range(max(0, missing)):
            it = order[i % len(order)]
            k = per_source.get(it.path, 0)
            per_source[it.path] = k + 1
            out.append(_job(folder, stems, it, k, ext, len(jobs) + len(out)))
    return out


def _shortfall(jobs: list[Job], skipped: set[str], per_class: int) -> dict[str, int]:
    """Images written per class where that is fewer than ``per_class``."""
    got: dict[str, int] = {}
    for j in jobs:
        got.setdefault(j.source.class_name, 0)
        if str(j.source.path) not in skipped:
            got[j.source.class_name] += 1
    return {c: n for c, n in got.items() if n < per_class}


def _consume(
    results: Any,
    jobs: list[Job],
    entries: dict[int, Any],
    manifest: Manifest,
    report: GenerateReport,
    progress: Callable[[int], None] | None,
    seed: int,
    count_skips: bool = True,
) -> None:
    for index, status, payload in results:
        job = jobs[index]
        if status == "written":
            payload, digest = payload
            entry = {
                "index": index,
                "source": job.source_rel,
                "source_sha1": digest,
                "output": job.output,
                "class": job.source.class_name,
                "seed": seed,
                "epoch": 0,
                "params": payload,
            }
            entries[index] = entry
            manifest.append(entry)
            report.written += 1
        else:
            report.skipped.setdefault(str(job.source.path), payload)
            if not count_skips:
                continue
        if progress is not None:
            progress(1)


def _version() -> str:
    from augmentor.trainer import versions

    return versions(("smallaug",))["smallaug"]


# -- preview -------------------------------------------------------------------------------------


def pick_preview_items(folder: ImageFolder, n: int) -> list[ImageItem]:
    """Up to ``n`` images, round-robin over the classes (first images of each class)."""
    per_class = list(folder.by_class().values())
    out: list[ImageItem] = []
    k = 0
    while len(out) < n and any(k < len(v) for v in per_class):
        for items in per_class:
            if k < len(items) and len(out) < n:
                out.append(items[k])
        k += 1
    return out


def preview_grid(
    src: str | Path,
    pipeline: Pipeline,
    out: str | Path,
    *,
    rows: int = 8,
    columns: int = 6,
    cell: int = 112,
) -> dict[str, Any]:
    """A PNG grid: each row an original (left) beside ``columns - 1`` augmented versions.

    An unreadable image is skipped (and returned under ``skipped``) and the next image of the
    round-robin takes its row; a folder with no readable image is a ``ValueError`` and writes
    nothing."""
    from PIL import Image, ImageDraw

    if rows < 1 or columns < 2:
        raise ValueError(f"rows must be >= 1 and columns >= 2, got {rows} and {columns}")
    if pipeline.returns_tensor:
        raise ValueError("the pipeline ends with normalize; drop it to preview images")
    out = Path(out)
    if out.is_dir():
        raise ValueError(
            f"output {str(out)!r} is a directory; give a file name such as "
            f"{str(out / 'preview.png')!r}"
        )
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"output {str(out)!r}: {str(parent)!r} is a file, not a folder")
            break
    folder = scan_image_folder(src)
    shown: list[tuple[ImageItem, list[np.ndarray]]] = []
    skipped = {}
    for it in pick_preview_items(folder, len(folder.items)):
        if len(shown) == rows:
            break
        try:
            image = load_image(it.path)
        except (ImageReadError, OSError) as e:
            skipped[str(it.path)] = str(e)
            continue
        r = len(shown)
        views = [image] + [pipeline(image, index=r * (columns - 1) + c) for c in range(columns - 1)]
        shown.append((it, views))
    if not shown:
        raise ValueError(f"SRC {str(src)!r} holds no readable image ({len(skipped)} unreadable)")
    label_h = 14
    grid = Image.new("RGB", (columns * cell, len(shown) * (cell + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r, (it, views) in enumerate(shown):
        y = r * (cell + label_h)
        draw.text((2, y + 1), f"{it.class_name}: {it.path.name}"[:40], fill=(0, 0, 0))
        for c, v in enumerate(views):
            grid.paste(_cell(v, cell), (c * cell, y + label_h))
    out.parent.mkdir(parents=True, exist_ok=True)
    import io as _io

    buf = _io.BytesIO()
    grid.save(buf, format="PNG")
    from augmentor.io import atomic_write_bytes

    atomic_write_bytes(out, buf.getvalue())
    return {"rows": len(shown), "columns": columns, "skipped": skipped}


def _cell(image: np.ndarray, cell: int) -> Any:
    from PIL import Image

    pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).convert("RGB")
    scale = cell / max(pil.size)
    new = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
    pil = pil.resize(new, Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (cell, cell), (255, 255, 255))
    canvas.paste(pil, ((cell - new[0]) // 2, (cell - new[1]) // 2))
    return canvas
