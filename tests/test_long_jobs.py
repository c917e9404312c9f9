"""Long jobs that keep their promises: checkpoints that exist, exact resume (also after kill -9),
resume that checks what it resumes, atomic and safe checkpoints, divergence caught, several
devices, LP-FT never worse than its probe, honest intervals."""

import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from augmentor.datasets import fashion_mnist_subset
from augmentor.generators.config import GeneratorError, TrainConfig
from augmentor.generators.data import GeneratorData
from augmentor.generators.fit import train_generator
from augmentor.io import write_image_folder
from augmentor.trainer import (
    CheckpointError,
    DivergenceError,
    load_checkpoint_file,
    save_checkpoint_file,
)
from transfer.config import FinetuneConfig
from transfer.errors import DataError
from transfer.evaluate import mean_interval
from transfer.finetuning import finetune
from transfer.images import LabelledImages

ROOT = Path(__file__).resolve().parents[1]
CNN = dict(backbone="small_cnn", pretrained=False, image_size=28, probe_epochs=2, preset=None)


def _images(per_class: int, classes: int = 3, offset: int = 0) -> LabelledImages:
    ds = fashion_mnist_subset("train")
    keep = np.concatenate(
        [np.flatnonzero(ds.labels == c)[offset : offset + per_class] for c in range(classes)]
    )
    return LabelledImages.from_arrays(ds.images[keep], ds.labels[keep], ds.classes[:classes])


def _folder(root: Path, per_class: int, offset: int = 0) -> Path:
    data = _images(per_class, offset=offset)
    write_image_folder(root, np.stack(data.images), data.labels, data.classes)
    return root


def _run(*args, env=None, check=None, timeout=300):
    r = subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=timeout,
    )
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    return r


def _kill_when(args, ready, timeout=120):
    """Start `augment ARGS`, SIGKILL it as soon as ``ready()`` is true; return whether it was."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


def _same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- 1. generator checkpoints, kill -9, resume -------------------------------------------------


@pytest.mark.slow
def test_generator_kill_9_mid_fit_then_resume_equals_an_uninterrupted_run(tmp_path):
    data = _folder(tmp_path / "data", 8)
    common = ["--steps", 600, "--steps-per-epoch", 10, "--image-size", 16, "--no-track-kid"]
    common += ["--base-channels", 8, "--batch-size", 8]
    _run("train", "vae", data, "--out", tmp_path / "straight", *common, check=0)
    run = tmp_path / "killed"
    second_grid = run / "samples" / "step-0000020.png"
    assert _kill_when(["train", "vae", data, "--out", run, *common], second_grid.exists)
    assert (run / "checkpoints" / "last.ckpt").is_file()  # written mid-fit, not at its end
    assert not (run / "generator").exists()
    _run("train", "vae", data, "--out", run, *common, "--resume", check=0)
    a = load_file(str(tmp_path / "straight" / "generator" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(run / "generator" / "diffusion_pytorch_model.safetensors"))
    _same_tensors(a, b)


def test_steps_are_exact_and_checkpoints_follow_each_epoch(tmp_path, global_rng):
    cfg = TrainConfig("vae", steps=5, steps_per_epoch=2, batch_size=8, base_channels=8)
    data = _gdata()
    r = train_generator(data, tmp_path, cfg, progress=False)
    assert r.steps == 5  # not rounded up to whole epochs
    ckpt = load_checkpoint_file(tmp_path / "checkpoints" / "last.ckpt")
    assert int(ckpt["state_dict"]["step"]) == 5


def _gdata() -> GeneratorData:
    ds = fashion_mnist_subset("train")
    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:8] for c in range(3)])
    x = torch.from_numpy(ds.images[keep][:, None, 4:20, 4:20]).float() / 127.5 - 1
    return GeneratorData(x, torch.from_numpy(ds.labels[keep]), ds.classes[:3], "fp-a", [])


# -- 2. fine-tuning: kill -9, resume, byte-identical -------------------------------------------


@pytest.mark.slow
def test_finetune_kill_9_then_resume_gives_the_same_bytes(tmp_path):
    data = _folder(tmp_path / "data", 12)
    args = ["--backbone", "small_cnn", "--no-pretrained", "--image-size", 28, "--epochs", 12]
    args += ["--probe-epochs", 2, "--batch-size", 8, "--no-export"]  # dropout 0.2, MixUp/CutMix on
    _run("finetune", data, "--out", tmp_path / "straight", *args, check=0)
    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.ckpt"
    assert _kill_when(["finetune", data, "--out", run, *args], last.exists)
    assert not (run / "model.safetensors").exists()
    _run("finetune", data, "--out", run, *args, "--resume", check=0)
    a = (tmp_path / "straight" / "model.safetensors").read_bytes()
    assert (run / "model.safetensors").read_bytes() == a


# -- 3. resume checks what it resumes ------------------------------------------------------------


def test_resume_refuses_other_data_and_says_when_there_is_nothing(tmp_path, global_rng):
    cfg = FinetuneConfig(strategy="full", epochs=1, **CNN)
    finetune(_images(6), tmp_path / "run", cfg, progress=False, export=False)
    with pytest.raises(DataError, match=r"other settings or data.*data_fingerprint"):
        finetune(_images(6, offset=20), tmp_path / "run", cfg, resume=True, progress=False)
    with pytest.raises(DataError, match=r"other settings or data \(lr: 0.001 there, 0.01 here"):
        finetune(_images(6), tmp_path / "run", FinetuneConfig(**{**cfg.to_dict(), "lr": 0.01}),
                 resume=True, progress=False)  # fmt: skip
    with pytest.raises(DataError, match="has no checkpoint"):
        finetune(_images(6), tmp_path / "empty", cfg, resume=True, progress=False)
    g = TrainConfig("vae", steps=2, steps_per_epoch=2, batch_size=8, base_channels=8)
    train_generator(_gdata(), tmp_path / "gen", g, progress=False)
    other = _gdata()
    other.fingerprint = "fp-b"
    with pytest.raises(GeneratorError, match="data_fingerprint"):
        train_generator(other, tmp_path / "gen", g, resume=True, progress=False)
    with pytest.raises(GeneratorError, match=r"already holds a run.*--overwrite"):
        train_generator(_gdata(), tmp_path / "gen", g, progress=False)
    r = train_generator(_gdata(), tmp_path / "gen", g, overwrite=True, progress=False)
    assert r.steps == 2


# -- 4./5. atomic, safe checkpoints ------------------------------------------------------------


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)]).returncode:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        path = small / "last.ckpt"
        save_checkpoint_file({"state_dict": {"w": torch.zeros(10)}}, path)
        before = path.read_bytes()
        with pytest.raises(CheckpointError, match=r"no space left.*previous checkpoint is kept"):
            save_checkpoint_file({"state_dict": {"w": torch.zeros(100_000)}}, path)
        assert path.read_bytes() == before
        assert [p.name for p in small.iterdir()] == ["last.ckpt"]  # no partial file left
        assert torch.equal(load_checkpoint_file(path)["state_dict"]["w"], torch.zeros(10))
    finally:
        subprocess.run(["umount", str(small)])


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_a_booby_trapped_checkpoint_never_runs_even_when_the_environment_says_so(tmp_path, command):
    data = _folder(tmp_path / "data", 6)
    run = tmp_path / "run"
    marker = tmp_path / "pwned"
    (run / "checkpoints").mkdir(parents=True)
    with open(run / "checkpoints" / "last.ckpt", "wb") as f:
        pickle.dump({"state_dict": {}, "x": _Payload(str(marker))}, f)
    args = (
        ["train", "vae", data, "--steps", 2, "--no-track-kid"]
        if command == "train"
        else ["finetune", data, "--backbone", "small_cnn", "--no-pretrained"]
    )
    r = _run(*args, "--out", run, "--resume", env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert not marker.exists()
    assert r.returncode == 2, r.stderr[-1500:]
    # the first part's progress bar is on stderr too (issue 20 #17); the error is one line
    bar = re.compile(r"\[\d\d:\d\d")  # tqdm's [elapsed<remaining, rate]
    errors = [line for line in r.stderr.splitlines() if line.strip() and not bar.search(line)]
    assert len(errors) == 1 and "was not loaded" in errors[0] and "Traceback" not in r.stderr
    assert "weights_only=False" not in r.stderr


# -- 9./10. LP-FT never worse than its probe; divergence -----------------------------------------


def test_lp_ft_keeps_its_probe_when_fine_tuning_loses_it(tmp_path, global_rng):
    data = _images(10)
    # a probe that fits its training images (random conv features, a fast head), then a
    # fine-tuning rate that wrecks the network
    probe = dict(CNN, probe_epochs=60, head_lr=0.05)
    cfg = FinetuneConfig(strategy="lp-ft", epochs=3, lr=0.3, **probe)
    r = finetune(data, tmp_path, cfg, progress=False, export=False)
    assert r.kept is not None and r.kept.startswith("probe")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Model kept: probe" in report
    sane = finetune(data, tmp_path / "b", FinetuneConfig(strategy="lp-ft", epochs=3, **CNN),
                    progress=False, export=False)  # fmt: skip
    assert sane.kept is not None  # the comparison is made and reported either way


def test_short_lp_ft_runs_get_a_smaller_rate_and_a_longer_warmup():
    from transfer.finetuning import short_run_schedule

    cfg = FinetuneConfig()
    assert short_run_schedule(cfg, 9) == (9 / 180, 0.2)
    assert short_run_schedule(cfg, 180) == (1.0, 0.0)  # default runs are unchanged
    assert short_run_schedule(FinetuneConfig(strategy="full"), 9) == (1.0, 0.0)


def test_finetune_divergence_stops_and_saves_nothing(tmp_path, global_rng):
    cfg = FinetuneConfig(strategy="full", epochs=3, lr=1000, head_lr=1000, **CNN)
    with pytest.raises(DivergenceError, match=r"at step \d+.*lower the learning rate"):
        finetune(_images(8), tmp_path, cfg, progress=False, export=False)
    assert not (tmp_path / "model.safetensors").exists()
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    if ckpt.exists():  # an earlier, healthy epoch (still warming up) may be kept
        state = load_checkpoint_file(ckpt)["state_dict"]
        assert all(v.abs().max() < 1e4 for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_generator_divergence_stops_and_saves_nothing(tmp_path, kind, global_rng):
    cfg = TrainConfig(kind, steps=40, steps_per_epoch=10, lr=1000, batch_size=8, base_channels=8)
    with pytest.raises(DivergenceError, match=r"at step \d+; lower the learning rate \(--lr\)"):
        train_generator(_gdata(), tmp_path, cfg, progress=False)
    assert not (tmp_path / "generator").exists()
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    if ckpt.exists():  # an earlier, healthy epoch may have been kept: never a diverged one
        state = load_checkpoint_file(ckpt)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


# -- 11./12. what compare says -----------------------------------------------------------------


def test_intervals_do_not_claim_too_much():
    flat = mean_interval([0.02, 0.02])
    assert flat.degenerate and not flat.excludes_zero and "no interval" in flat.format()
    assert not mean_interval([0.02, 0.03]).excludes_zero  # 2 values: never marked
    assert mean_interval([0.02, 0.03, 0.025]).excludes_zero
    wide = mean_interval([0.6, 0.65], bounds=(0.0, 1.0))
    assert 0.0 <= wide.low and wide.high <= 1.0


def test_compare_gives_a_linear_probe_its_augmentation_as_feature_views():
    from transfer.comparison import LINEAR_VIEWS, with_views_for_linear

    cfg, note = with_views_for_linear(FinetuneConfig(strategy="linear", preset="light"))
    assert cfg.feature_views == LINEAR_VIEWS and "feature views" in note
    same, none = with_views_for_linear(FinetuneConfig(strategy="linear", preset=None))
    assert same.feature_views == 1 and none is None


# -- 6.-8. several devices (CPU processes, gloo: the code path of several GPUs) ------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_generators_on_two_devices(tmp_path, kind):
    data = _folder(tmp_path / "data", 8)
    out = tmp_path / "run"
    r = _run("train", kind, data, "--out", out, "--devices", 2, "--steps", 4,
             "--steps-per-epoch", 2, "--image-size", 16, "--no-track-kid", check=0)  # fmt: skip
    assert r.stdout.count("4 steps in") == 1  # rank 0 alone prints
    assert (out / "generator" / "generator.json").is_file()
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".old-*"))
    import json

    assert json.loads((out / "train.json").read_text())["steps"] == 4  # optimizer steps


_DIGEST = """
import hashlib, sys
from pathlib import Path
from lightning.pytorch.callbacks import Callback
from augmentor.trainer import is_global_zero
from transfer.config import FinetuneConfig
from transfer.finetuning import finetune

class Digest(Callback):
    def on_train_end(self, trainer, module):
        h = hashlib.sha256()
        for k, v in sorted(module.state_dict().items()):
            h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
        Path(sys.argv[2], f"rank-{trainer.global_rank}.txt").write_text(h.hexdigest())

cfg = FinetuneConfig(backbone="timm/resnet10t", pretrained=False, strategy="gradual",
                     epochs=3, image_size=32, preset=None, devices=2, batch_size=8)
finetune(sys.argv[1], sys.argv[2], cfg, progress=False, export=False, callbacks=[Digest()])
print("done" if is_global_zero() else "worker")
"""


@pytest.mark.slow
def test_gradual_fine_tuning_on_two_devices_keeps_the_ranks_identical(tmp_path):
    data = _folder(tmp_path / "data", 8)
    script = tmp_path / "ddp.py"
    script.write_text(_DIGEST)
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, str(script), str(data), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    digests = {p.read_text() for p in out.glob("rank-*.txt")}
    assert len(list(out.glob("rank-*.txt"))) == 2 and len(digests) == 1
    assert r.stdout.count("done") == 1
    assert (out / "model.safetensors").is_file() and (out / "report" / "report.md").is_file()


def test_a_resumed_run_keeps_the_logs_of_its_first_part(tmp_path, global_rng):
    from augmentor.trainer import read_metric_rows

    half = TrainConfig("vae", steps=20, steps_per_epoch=10, batch_size=8, base_channels=8)
    train_generator(_gdata(), tmp_path, half, progress=False)
    full = TrainConfig("vae", steps=40, steps_per_epoch=10, batch_size=8, base_channels=8)
    train_generator(_gdata(), tmp_path, full, resume=True, progress=False)
    steps = sorted({int(r["step"]) for r in read_metric_rows(tmp_path / "logs")})
    assert steps[0] < 20 <= steps[-1] and steps[-1] >= 30  # both parts are there
    assert (tmp_path / "logs" / "metrics.1.csv").is_file()
