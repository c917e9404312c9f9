"""Generators: the sample/save/load contract, training, exact resume, bad input, quality."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from augmentor.generators import GENERATORS, generator_class, load_generator
from augmentor.generators.common import DivergenceError, GeneratorError, save_generator
from augmentor.generators.config import TrainConfig
from augmentor.generators.data import GeneratorData, load_training_data
from augmentor.generators.fit import train_generator
from augmentor.generators.gan import ClassBatchNorm2d, ConditionalGenerator, diff_augment

ROOT = Path(__file__).resolve().parents[1]
TINY = {"image_size": 16, "channels": 1, "num_classes": 3, "base_channels": 8}


def tiny(kind):
    kw = dict(TINY)
    if kind == "diffusion":
        kw["sample_steps"] = 3
    return generator_class(kind)(**kw)


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_sample_contract(kind, global_rng):
    model = tiny(kind)
    g = torch.Generator().manual_seed(0)
    imgs = model.sample(5, generator=g)
    assert imgs.shape == (5, 1, 16, 16) and imgs.dtype == torch.uint8
    again = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(imgs, again)
    assert model.sample(0).shape == (0, 1, 16, 16)
    assert model.sample(2, labels=[2, 2]).shape[0] == 2
    with pytest.raises(GeneratorError, match=r"label 3 is outside the trained classes 0\.\.2"):
        model.sample(2, labels=[0, 3])
    with pytest.raises(GeneratorError, match="n=3 entries"):
        model.sample(3, labels=[0, 1])


def _save(kind, directory):
    model = tiny(kind)
    save_generator(
        model,
        directory,
        {
            "kind": kind,
            "class_names": ["a", "b", "c"],
            "image_size": 16,
            "channels": 1,
            "data_fingerprint": "x",
        },
    )
    return model


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_load_in_a_fresh_process_without_training_code(kind, tmp_path, global_rng):
    model = _save(kind, tmp_path / "gen")
    expected = model.sample(
        6, labels=[0, 1, 2, 0, 1, 2], generator=torch.Generator().manual_seed(7)
    )
    code = (
        "import sys, torch\n"
        "from augmentor.generators import load_generator\n"
        f"gen = load_generator({str(tmp_path / 'gen')!r})\n"
        "x = gen.sample(6, labels=[0, 1, 2, 0, 1, 2], generator=torch.Generator().manual_seed(7))\n"
        f"torch.save(x, {str(tmp_path / 'x.pt')!r})\n"
        "bad = [m for m in sys.modules if m.startswith(('lightning', 'pytorch_lightning', "
        "'augmentor.generators.train', 'transfer'))]\n"
        "print('IMPORTED', bad)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "IMPORTED []" in r.stdout
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True), expected)
    names = {p.name for p in (tmp_path / "gen").iterdir()}
    assert names == {"config.json", "diffusion_pytorch_model.safetensors", "generator.json"}


def test_broken_generator_directories(tmp_path, global_rng):
    _save("vae", tmp_path / "g")
    with pytest.raises(GeneratorError, match="does not exist"):
        load_generator(tmp_path / "nope")
    meta = json.loads((tmp_path / "g" / "generator.json").read_text())
    (tmp_path / "g" / "generator.json").write_text(json.dumps({**meta, "image_size": 32}))
    with pytest.raises(GeneratorError, match="does not match"):
        load_generator(tmp_path / "g")
    (tmp_path / "g" / "generator.json").write_text(json.dumps(meta))
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    (tmp_path / "g" / "config.json").write_text(json.dumps({**cfg, "latent_dim": 7}))
    with pytest.raises(GeneratorError, match="do not load into its config"):
        load_generator(tmp_path / "g")
    # issue 20 #11: sizes from a file are bounded before anything is allocated
    (tmp_path / "g" / "config.json").write_text(json.dumps({**cfg, "base_channels": 4096}))
    with pytest.raises(GeneratorError, match=r"config.json.*base_channels .*1024.*got 4096"):
        load_generator(tmp_path / "g")
    (tmp_path / "g" / "config.json").write_text("[1, 2]")
    with pytest.raises(GeneratorError, match="must hold a JSON object"):
        load_generator(tmp_path / "g")
    (tmp_path / "g" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "g" / "generator.json").write_text(
        json.dumps({k: v for k, v in meta.items() if k != "class_names"})
    )
    with pytest.raises(GeneratorError, match="class_names"):
        load_generator(tmp_path / "g")
    (tmp_path / "g" / "generator.json").write_text(json.dumps(meta))
    (tmp_path / "g" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(GeneratorError, match="safetensors is missing"):
        load_generator(tmp_path / "g")


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_resume_equals_one_run(kind, gdata, tmp_path):
    cfg = TrainConfig(kind, steps=6, steps_per_epoch=3, batch_size=8, base_channels=8)
    straight = train_generator(gdata, tmp_path / "a", cfg, progress=False)
    half = TrainConfig(kind, steps=3, steps_per_epoch=3, batch_size=8, base_channels=8)
    train_generator(gdata, tmp_path / "b", half, progress=False)
    resumed = train_generator(gdata, tmp_path / "b", cfg, resume=True, progress=False)
    assert straight.steps == resumed.steps == 6
    a = load_generator(straight.generator_dir).model.state_dict()
    b = load_generator(resumed.generator_dir).model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    # and the check can fail: 3 steps are not 6
    c = load_generator(tmp_path / "b" / "generator")  # overwritten by the resumed run
    assert c.meta["step"] == 6
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert "state_dict" in ckpt


def test_training_writes_grids_curves_and_kid_best(gdata, tmp_path):
    calls = []

    def score(images, labels):
        calls.append(len(images))
        return {"kid": 1.0 / len(calls), "kid_std": 0.0}  # improves each epoch

    cfg = TrainConfig(
        "diffusion", steps=4, steps_per_epoch=2, batch_size=8, base_channels=8, eval_samples=12
    )
    r = train_generator(gdata, tmp_path, cfg, progress=False, score=score)
    assert calls == [12, 12]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step-0000002.png",
        "step-0000004.png",
    ]
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "train.json").is_file()
    assert load_generator(tmp_path / "best").meta["quality"]["kid"] == 0.5
    assert r.quality[-1]["step"] == 4


def test_nan_stops_training_and_saves_no_generator(gdata, tmp_path):
    bad = GeneratorData(gdata.images.clone(), gdata.labels, gdata.class_names, "x", [])
    bad.images[:] = float("nan")
    with pytest.raises(DivergenceError, match=r"at step 0.*nothing was saved"):
        train_generator(
            bad,
            tmp_path,
            TrainConfig("vae", steps=2, steps_per_epoch=2, base_channels=8),
            progress=False,
        )
    assert not (tmp_path / "generator").exists()


def test_training_data_checks(tmp_path):
    from augmentor.datasets import fashion_mnist_subset
    from augmentor.io import save_image

    ds = fashion_mnist_subset("train")
    for i in range(6):
        save_image(tmp_path / "ok" / f"{i}.png", ds.images[i][..., None])
    for i in range(2):
        save_image(tmp_path / "rare" / f"{i}.png", ds.images[i][..., None])
    with pytest.raises(GeneratorError, match="'rare' has 2"):
        load_training_data(tmp_path)
    for i in range(2, 6):  # mixed sizes and modes
        save_image(tmp_path / "rare" / f"{i}.png", np.repeat(ds.images[i][:20, :, None], 3, 2))
    data = load_training_data(tmp_path, image_size=24)
    assert data.images.shape == (12, 3, 24, 24)  # some are RGB: all become RGB
    assert any("resized 12 of 12" in n for n in data.notes)
    assert any("converted 8 images to RGB" in n for n in data.notes)
    assert load_training_data(tmp_path, image_size=24, channels=1).images.shape[1] == 1


def test_diff_augment_is_seeded_and_differentiable(global_rng):
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_()
    a = diff_augment(x, generator=torch.Generator().manual_seed(1))
    b = diff_augment(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    cut = diff_augment(torch.ones(8, 1, 16, 16), ("cutout",), torch.Generator().manual_seed(0))
    zero = (cut == 0).float().mean(dim=(1, 2, 3))
    assert torch.all((zero > 0.1) & (zero <= 0.25 + 1e-6))  # a half-side square, clipped


def test_kid_ranks_real_closer_than_noise(gdata):
    from transfer.quality import FeatureSpace, kid_fid

    space = FeatureSpace(image_size=32)
    real = ((gdata.images + 1) * 127.5).round().to(torch.uint8)
    other = torch.flip(real, dims=[0])
    noise = torch.randint(
        0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    same = kid_fid(real[:18], other[:18], space, subsets=10)
    far = kid_fid(real[:18], noise[:18], space, subsets=10)
    assert far.kid > same.kid and far.fid > same.fid


def test_generate_from_a_saved_generator_resumes(tmp_path, global_rng):
    from augmentor.generators.sample import sample_folder

    _save("gan", tmp_path / "gen")
    r = sample_folder(tmp_path / "gen", tmp_path / "out", per_class=5, seed=3)
    assert r.written == 15
    files = sorted((tmp_path / "out").rglob("*.png"))
    assert [p.parent.name for p in files].count("b") == 5
    first = files[0].read_bytes()
    files[0].unlink()
    again = sample_folder(tmp_path / "gen", tmp_path / "out", per_class=5, seed=3)
    assert again.already_done == 10 and files[0].read_bytes() == first
    with pytest.raises(GeneratorError, match="other settings"):
        sample_folder(tmp_path / "gen", tmp_path / "out", per_class=5, seed=4)


@pytest.mark.slow
def test_cli_train_then_generate(fmnist_folder, tmp_path):
    from test_cli import augment

    r = augment("train", "gan", fmnist_folder, "--out", tmp_path / "g", "--dry-run", check=0)
    assert "steps: 3000" in r.stdout and "ms/step" in r.stdout
    assert not (tmp_path / "g" / "generator").exists()
    augment(
        "train",
        "vae",
        fmnist_folder,
        "--out",
        tmp_path / "g",
        "--steps",
        "120",
        "--steps-per-epoch",
        "60",
        "--base-channels",
        "8",
        "--no-track-kid",
        check=0,
    )
    r = augment(
        "generate", tmp_path / "g" / "generator", tmp_path / "syn", "--per-class", "3", check=0
    )
    assert "written 9" in r.stdout
    assert len(list((tmp_path / "syn").rglob("*.png"))) == 9

    # --filter: keep only samples a fine-tuned classifier puts in their own class. The
    # classifier learns this (barely trained) generator's own samples, so some must pass.
    syn20 = tmp_path / "syn20"
    augment("generate", tmp_path / "g" / "generator", syn20, "--per-class", "20", check=0)
    clf = ["--backbone", "small_cnn", "--no-pretrained", "--strategy", "full", "--epochs", "5"]
    augment("finetune", syn20, "--out", tmp_path / "clf", *clf, check=0)
    r = augment(
        "generate",
        tmp_path / "g" / "generator",
        tmp_path / "kept",
        "--per-class",
        "2",
        "--filter",
        tmp_path / "clf",
        "--confidence",
        "0:1",
        check=0,
    )
    assert "accepted by the filter" in r.stdout
    assert json.loads((tmp_path / "kept" / "filter.json").read_text())["acceptance"]
    kept = sorted((tmp_path / "kept").rglob("*.png"))
    assert len(kept) == 6
    r = augment("predict", tmp_path / "clf", *kept, "--json", check=0)
    for line, path in zip(r.stdout.splitlines(), kept):
        assert json.loads(line)["top"][0]["class"] == path.parent.name
    r = augment(
        "generate",
        tmp_path / "g" / "generator",
        tmp_path / "bad",
        "--per-class",
        "2",
        "--filter",
        tmp_path / "clf",
        "--confidence",
        "0.9:0.1",
        check=2,
    )
    assert "--confidence" in r.stderr
    r = augment(
        "generate", tmp_path / "g" / "generator", tmp_path / "syn2", "--per-image", "3", check=2
    )
    assert "--per-class" in r.stderr
    r = augment("train", "vae", tmp_path / "syn", "--out", tmp_path / "x", check=2)
    assert "needs at least 5 images" in r.stderr and "Traceback" not in r.stderr


def test_filtered_sampling_keeps_only_accepted_and_reports_rates(tmp_path, global_rng):
    from augmentor.generators.sample import sample_folder

    _save("vae", tmp_path / "gen")

    def even(images, labels):  # a deterministic criterion that rejects about half
        return images[:, 0, 8, 8] % 2 == 0

    r = sample_folder(
        tmp_path / "gen", tmp_path / "out", per_class=4, seed=0, accept=even, accept_name="even"
    )
    assert set(r.acceptance) == {"a", "b", "c"} and all(0 < v < 1 for v in r.acceptance.values())
    from augmentor.io import load_image

    files = sorted((tmp_path / "out").rglob("*.png"))
    assert len(files) == 12 and all(load_image(p)[8, 8, 0] % 2 == 0 for p in files)
    assert json.loads((tmp_path / "out" / "filter.json").read_text())["filter"] == "even"
    with pytest.raises(GeneratorError, match="pass the filter"):
        sample_folder(
            tmp_path / "gen",
            tmp_path / "none",
            per_class=2,
            accept=lambda im, y: torch.zeros(len(y), dtype=torch.bool),
        )


@pytest.mark.slow
def test_cli_quality_report(fmnist_folder, tmp_path, global_rng):
    from test_cli import augment

    model = tiny("gan")
    classes = sorted(p.name for p in fmnist_folder.iterdir())
    save_generator(
        model,
        tmp_path / "gen",
        {"kind": "gan", "class_names": classes, "image_size": 16, "channels": 1},
    )
    r = augment(
        "quality",
        tmp_path / "gen",
        fmnist_folder,
        "--samples",
        "20",
        "--out",
        tmp_path / "q",
        check=0,
    )
    assert "KID" in r.stdout and "near-duplicates" in r.stdout
    q = json.loads((tmp_path / "q" / "quality.json").read_text())
    assert q["kid_std"] >= 0 and q["n_real"] == 18 and 0 <= q["near_duplicate_rate"] <= 1
    assert (tmp_path / "q" / "neighbours.png").stat().st_size > 100


@pytest.mark.parametrize("kind", sorted(GENERATORS))
@pytest.mark.parametrize("size", [28, 64])
def test_sizes_and_rgb(kind, size, global_rng):
    kw = {"image_size": size, "channels": 3, "num_classes": 2, "base_channels": 8}
    if kind == "diffusion":
        kw["sample_steps"] = 1
    model = generator_class(kind)(**kw)
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, size, size)
    with pytest.raises(GeneratorError, match="divisible by 4"):
        generator_class(kind)(**{**kw, "image_size": 30})


def test_class_batchnorm_scales_and_shifts_each_row_by_its_class(global_rng):
    bn = ClassBatchNorm2d(2, num_classes=3).train()
    with torch.no_grad():
        bn.scale.weight[1] = torch.tensor([2.0, 3.0])
        bn.shift.weight[2] = torch.tensor([1.0, -1.0])
    x = torch.randn(6, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    plain = torch.nn.functional.batch_norm(x, None, None, training=True, eps=bn.bn.eps)
    out = bn(x, y)
    torch.testing.assert_close(out[y == 0], plain[y == 0])
    torch.testing.assert_close(out[y == 1], plain[y == 1] * torch.tensor([2.0, 3.0])[:, None, None])
    torch.testing.assert_close(
        out[y == 2], plain[y == 2] + torch.tensor([1.0, -1.0])[:, None, None]
    )


def test_a_gan_saved_before_class_bn_still_loads(tmp_path, global_rng):
    old = ConditionalGenerator(image_size=16, channels=1, num_classes=3, base_channels=8)
    old.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["class_bn"]  # what a generator saved before the option existed holds
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    again = ConditionalGenerator.from_pretrained(tmp_path)
    assert again.config.class_bn is False
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(old.sample(4, generator=g()), again.sample(4, generator=g()))
    new = ConditionalGenerator(
        image_size=16, channels=1, num_classes=3, base_channels=8, class_bn=True
    )
    assert any(isinstance(m, ClassBatchNorm2d) for m in new.modules())
    assert new.sample(4, labels=[0, 1, 2, 0], generator=g()).shape == (4, 1, 16, 16)


def test_sampled_folders_keep_class_names_and_refuse_collisions(tmp_path, global_rng):
    """Issue 20 #1: `red shoe` is written as `red shoe` (so the folder reads back as the same
    class), and two classes that would share one folder are refused before anything is written."""
    from augmentor.generators.sample import sample_folder
    from transfer.images import load_folder

    meta = {"kind": "gan", "image_size": 16, "channels": 1, "data_fingerprint": "x"}
    save_generator(tiny("gan"), tmp_path / "gen", {**meta, "class_names": ["red shoe", "a", "b"]})
    sample_folder(tmp_path / "gen", tmp_path / "out", per_class=2, seed=0)
    assert load_folder(tmp_path / "out").classes == ["a", "b", "red shoe"]

    save_generator(tiny("gan"), tmp_path / "g2", {**meta, "class_names": ["a/b", "a_b", "c"]})
    with pytest.raises(GeneratorError, match="'a/b' and 'a_b' would be written to the same"):
        sample_folder(tmp_path / "g2", tmp_path / "out2", per_class=2, seed=0)
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").rglob("*.png"))
