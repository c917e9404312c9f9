"""The `augment` command, run as a real subprocess on real image folders."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def augment(*args, check=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


def digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def test_help_imports_no_torch():
    code = (
        "import sys, runpy; sys.argv = ['augment', 'generate', '--help']\n"
        "try:\n    runpy.run_module('cli.main', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "--per-image" in r.stdout and r.stdout.strip().endswith("NOTORCH")


def test_generate_writes_images_manifest_and_config(fmnist_folder, tmp_path):
    dst = tmp_path / "out"
    r = augment(
        "generate",
        fmnist_folder,
        dst,
        "--per-image",
        2,
        "--preset",
        "heavy",
        "--seed",
        "5",
        check=0,
    )
    assert "written 36" in r.stdout and "images/s" in r.stdout
    assert sorted(p.name for p in dst.iterdir() if p.is_dir()) == sorted(
        p.name for p in fmnist_folder.iterdir()
    )
    lines = [json.loads(x) for x in (dst / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 36 and [e["index"] for e in lines] == list(range(36))
    e = lines[0]
    assert {"source", "output", "class", "seed", "params"} <= set(e) and e["seed"] == 5
    assert (dst / e["output"]).exists() and (fmnist_folder / e["source"]).exists()
    # the manifest's params replay to the same pixels
    from augmentor import Pipeline
    from augmentor.io import load_image

    pipe = Pipeline.load(dst / "pipeline.yaml")
    again = pipe.replay(load_image(fmnist_folder / e["source"]), e["params"])
    np.testing.assert_array_equal(again, load_image(dst / e["output"]))
    assert json.loads((dst / "run.json").read_text())["version"]


def test_same_seed_byte_identical_for_any_worker_count(fmnist_folder, tmp_path):
    augment("generate", fmnist_folder, tmp_path / "a", "--per-class", 10, "--seed", 3, check=0)
    augment(
        "generate",
        fmnist_folder,
        tmp_path / "b",
        "--per-class",
        10,
        "--seed",
        3,
        "--workers",
        2,
        check=0,
    )
    da, db = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert len(da) == 30 and da == db
    assert (tmp_path / "a" / "manifest.jsonl").read_text() == (
        tmp_path / "b" / "manifest.jsonl"
    ).read_text()


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_result(fmnist_folder, tmp_path):
    args = ["generate", fmnist_folder, None, "--per-image", 60, "--preset", "medium"]
    ref = tmp_path / "ref"
    augment(*[a if a is not None else ref for a in args], check=0)
    dst = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *[str(a if a is not None else dst) for a in args]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(list(dst.rglob("*.png"))) < 100:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = digest(dst)
    assert 0 < len(partial) < len(digest(ref))
    for name, h in partial.items():  # every file under its final name is complete
        assert digest(ref)[name] == h
    assert not [
        p
        for p in dst.rglob("*")
        if p.suffix in (".png", ".jpg", ".webp") and p.name.startswith(".")
    ]  # leftovers of the kill are not images by name
    r = augment(*[a if a is not None else dst for a in args], check=0)
    assert "Resuming" in r.stderr
    assert digest(dst) == digest(ref)
    assert not list(dst.rglob(".tmp-*"))
    assert (dst / "manifest.jsonl").read_text() == (ref / "manifest.jsonl").read_text()


def test_rerun_of_finished_job_writes_nothing(fmnist_folder, tmp_path):
    augment("generate", fmnist_folder, tmp_path / "o", "--per-image", 1, check=0)
    r = augment("generate", fmnist_folder, tmp_path / "o", "--per-image", 1, check=0)
    assert "written 0, already done 18" in r.stdout


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda s, d: ["generate", s / "missing", d, "--per-image", 1], "does not exist"),
        (lambda s, d: ["generate", s, s / "inside", "--per-image", 1], "is inside SRC"),
        (lambda s, d: ["generate", s, d, "--per-image", -1], "'--per-image': -1"),
        (lambda s, d: ["generate", s, d, "--per-image", 1, "--preset", "wild"], "'wild'"),
        (lambda s, d: ["generate", s, d], "--per-image N or --per-class N"),
        (
            lambda s, d: ["generate", s, d, "--per-image", 1, "--pipeline", d.parent / "p2.yaml"],
            r"p must be a number in [0, 1], got 2",
        ),
        (
            lambda s, d: ["generate", s, d, "--per-image", 1, "--pipeline", d.parent / "unk.yaml"],
            "unknown op 'rotat'; did you mean 'rotate'",
        ),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(fmnist_folder, tmp_path, make_args, message):
    (tmp_path / "p2.yaml").write_text("version: 1\nops:\n  - {op: rotate, p: 2}\n")
    (tmp_path / "unk.yaml").write_text("version: 1\nops:\n  - {op: rotat}\n")
    dst = tmp_path / "dst"
    r = augment(*make_args(fmnist_folder, dst))
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error:") and message in err[0], r.stderr
    assert not dst.exists() and not (fmnist_folder / "inside").exists()


def test_empty_src(tmp_path):
    (tmp_path / "src" / "a").mkdir(parents=True)
    r = augment("generate", tmp_path / "src", tmp_path / "dst", "--per-image", 1)
    assert r.returncode == 2 and "holds no images" in r.stderr
    assert not (tmp_path / "dst").exists()


def test_corrupt_files_skipped_and_reported(fmnist_folder, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(fmnist_folder, src)
    cls = sorted(p for p in src.iterdir())[0]
    (cls / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = next(cls.glob("*.png")).read_bytes()
    (cls / "truncated.png").write_bytes(good[: len(good) // 2])
    (cls / "readme.txt").write_text("not an image")
    r = augment("generate", src, tmp_path / "dst", "--per-image", 1)
    assert r.returncode == 3, r.stderr
    assert "written 18" in r.stdout and "skipped 2 source images" in r.stdout
    assert "broken.png" in r.stdout and "truncated.png" in r.stdout
    assert "ignored 1 non-image files" in r.stdout


def test_per_class_delivers_n_from_readable_sources(tmp_path):
    """Issue 20 #3: --per-class 7 over a class with three readable images and one unreadable
    one writes 7, not 6; the same files with a worker pool and on a resumed run; a class with
    no readable image says how many it got."""
    from augmentor.datasets import textures

    ds = textures(per_class=3)
    src = tmp_path / "src"
    for c in range(2):
        (src / ds.classes[c]).mkdir(parents=True)
        for i in range(3):
            img = Image.fromarray(ds.images[np.flatnonzero(ds.labels == c)[i]].squeeze())
            img.save(src / ds.classes[c] / f"x{i}.png")
    (src / ds.classes[0] / "bad.png").write_bytes(b"not a png")
    (src / "empty").mkdir()
    (src / "empty" / "bad.png").write_bytes(b"not a png")
    r = augment("generate", src, tmp_path / "a", "--per-class", 7, "--seed", 1)
    assert r.returncode == 3, r.stderr
    for c in ds.classes[:2]:
        assert len(list((tmp_path / "a" / c).glob("*.png"))) == 7
    assert "class 'empty': 0 of 7 images written" in r.stdout
    augment("generate", src, tmp_path / "b", "--per-class", 7, "--seed", 1, "--workers", 2)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    first = sorted((tmp_path / "a" / ds.classes[0]).glob("*.png"))[-1]
    first.unlink()
    r = augment("generate", src, tmp_path / "a", "--per-class", 7, "--seed", 1)
    assert "written 1," in r.stdout and digest(tmp_path / "a") == digest(tmp_path / "b")
    rows = (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()
    assert len(rows) == 14 and len({json.loads(r)["output"] for r in rows}) == 14


def test_mixed_formats_modes_and_sizes(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for i, (fmt, mode, size) in enumerate(
        [
            ("png", "RGBA", 40),
            ("jpg", "RGB", 64),
            ("bmp", "L", 33),
            ("tiff", "P", 50),
            ("webp", "RGB", 45),
        ]
    ):
        d = src / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(d / f"x{i}.{fmt}")
    dst = tmp_path / "dst"
    augment("generate", src, dst, "--per-image", 2, "--format", "jpg", "--quality", "80", check=0)
    outs = sorted(dst.rglob("*.jpg"))
    assert len(outs) == 10
    assert {Image.open(p).size for p in outs} == {(43, 40), (67, 64), (36, 33), (53, 50), (48, 45)}


def test_preview_and_data_export(tmp_path):
    data = tmp_path / "data"
    r = augment("data", "export", "fashion-mnist-subset", data, "--split", "test", check=0)
    assert "wrote 1000 images" in r.stdout
    augment(
        "preview",
        data,
        "--preset",
        "randaugment",
        "-o",
        tmp_path / "grid.png",
        "--rows",
        4,
        "--columns",
        3,
        check=0,
    )
    img = Image.open(tmp_path / "grid.png")
    assert img.size[0] == 3 * 112 and img.size[1] > 4 * 112


def test_resume_follows_changed_and_deleted_sources_and_a_second_run_is_locked_out(
    fmnist_folder, tmp_path
):
    """Issue 20 #4/#5: a modified source kept its stale output and a deleted source's output
    stayed without a manifest row; a second run into the same DST deleted the first's
    temporary files and killed it."""
    from augmentor.folders import _lock

    src = tmp_path / "src"
    shutil.copytree(fmnist_folder, src)
    dst = tmp_path / "dst"
    augment("generate", src, dst, "--per-image", 2, "--seed", 1, check=0)
    before = digest(dst)
    cls = sorted(p for p in src.iterdir() if p.is_dir())[0]
    changed, deleted = sorted(cls.glob("*.png"))[:2]
    Image.fromarray(255 - np.asarray(Image.open(changed))).save(changed)
    deleted.unlink()
    r = augment("generate", src, dst, "--per-image", 2, "--seed", 1, check=0)
    assert "written 2," in r.stdout and "removed 2 outputs" in r.stdout, r.stdout
    after = digest(dst)
    stale = {k for k in before if k.startswith(f"{cls.name}/{changed.stem}_")}
    gone = {k for k in before if k.startswith(f"{cls.name}/{deleted.stem}_")}
    assert len(stale) == 2 and all(after[k] != before[k] for k in stale)
    assert len(gone) == 2 and not gone & set(after)
    rows = [json.loads(x) for x in (dst / "manifest.jsonl").read_text().splitlines()]
    assert {r["output"] for r in rows} == set(after)
    held = _lock(dst)
    try:
        r = augment("generate", src, dst, "--per-image", 2, "--seed", 1)
        assert r.returncode == 2 and "is in use by another" in r.stderr, r.stderr
    finally:
        held.close()
    assert digest(dst) == after
