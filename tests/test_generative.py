"""Generative augmentation that can be measured: variations of real images (vary), the
selective filter, in-batch replacement, the duplicated-reals control and a powered compare."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from augmentor.datasets import fashion_mnist_subset
from augmentor.generators.common import GeneratorError, save_generator
from augmentor.generators.diffusion import ConditionalDiffusion
from augmentor.generators.gan import ConditionalGenerator
from augmentor.generators.registry import load_generator
from augmentor.generators.sample import vary_folder
from augmentor.generators.vae import ConditionalVAE
from augmentor.io import write_image_folder
from transfer.comparison import Comparison
from transfer.config import FinetuneConfig
from transfer.data import TrainImages, variations_of
from transfer.evaluate import detectable_effect, mean_interval
from transfer.generative import ARMS, CONTROL, arm_configs, arm_steps
from transfer.images import LabelledImages, load_folder
from transfer.preprocess import PreprocessModule

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["ankle_boot", "bag", "coat"]


def _images(per_class: int = 6, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ds = fashion_mnist_subset("train")
    keep = np.concatenate(
        [np.flatnonzero(ds.labels == c)[offset : offset + per_class] for c in (9, 8, 4)]
    )
    lab = {9: 0, 8: 1, 4: 2}
    x = torch.from_numpy(ds.images[keep][:, None, 6:22, 6:22].copy())  # 16 px crops
    return x, torch.tensor([lab[int(v)] for v in ds.labels[keep]])


def _tiny(kind):
    kw = dict(image_size=16, channels=1, num_classes=3, base_channels=8)
    if kind == "diffusion":
        kw["sample_steps"] = 4
        return ConditionalDiffusion(**kw)
    return ConditionalVAE(**kw) if kind == "vae" else ConditionalGenerator(**kw)


@pytest.mark.parametrize(("kind", "method"), [("vae", "posterior"), ("vae", "slerp"),
                                              ("diffusion", "sdedit")])  # fmt: skip
def test_vary_keeps_labels_and_is_reproducible(kind, method, global_rng):
    model = _tiny(kind)
    x, y = _images(4)
    kw = {"method": method}
    a = model.vary(x, y, 3, 0.5, torch.Generator().manual_seed(1), **kw)
    b = model.vary(x, y, 3, 0.5, torch.Generator().manual_seed(1), **kw)
    c = model.vary(x, y, 3, 0.5, torch.Generator().manual_seed(2), **kw)
    assert a.shape == (len(x) * 3, 1, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    zero = model.vary(x, y, 2, 0.0, torch.Generator().manual_seed(1), **kw)
    assert torch.equal(zero[0::2], zero[1::2])  # strength 0: no randomness left
    if kind == "diffusion":
        assert torch.equal(zero[0::2], x)  # the image itself


def test_strength_zero_is_close_to_the_input_for_a_trained_vae(tmp_path, global_rng):
    from augmentor.generators.config import TrainConfig
    from augmentor.generators.data import GeneratorData
    from augmentor.generators.fit import train_generator

    x, y = _images(8)
    data = GeneratorData(x.float() / 127.5 - 1, y, CLASSES, "fp", [])
    cfg = TrainConfig("vae", steps=300, steps_per_epoch=300, batch_size=16, base_channels=8)
    gen = load_generator(train_generator(data, tmp_path, cfg, progress=False).generator_dir)
    near = gen.vary(x, y, 1, 0.0).float()
    far = gen.vary(x, y, 1, 1.0, torch.Generator().manual_seed(0), method="slerp").float()
    err_near = (near - x.float()).abs().mean()
    assert err_near < 40  # a reconstruction, not noise (uint8 levels)
    assert (far - x.float()).abs().mean() > err_near  # further away with strength


def test_vary_refuses_what_it_cannot_do(global_rng):
    x, y = _images(1)
    with pytest.raises(GeneratorError, match="a GAN cannot make variations"):
        _tiny("gan").vary(x, y, 1, 0.5)
    vae = _tiny("vae")
    with pytest.raises(GeneratorError, match=r"strength must be in \[0, 1\], got 1.5"):
        vae.vary(x, y, 1, 1.5)
    with pytest.raises(GeneratorError, match=r"images must be \(N, 1, 16, 16\)"):
        vae.vary(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), [0, 1], 1, 0.5)
    with pytest.raises(GeneratorError, match="method must be one of posterior, slerp"):
        vae.vary(x, y, 1, 0.5, method="sdedit")


def _saved_vae(path: Path) -> Path:
    save_generator(
        _tiny("vae"),
        path,
        {"kind": "vae", "class_names": CLASSES, "image_size": 16, "channels": 1},
    )
    return path


def _real_folder(root: Path, per_class: int = 4) -> Path:
    x, y = _images(per_class)
    write_image_folder(root, x.permute(0, 2, 3, 1).numpy(), y.numpy(), CLASSES)
    return root


def test_vary_folder_names_sources_resumes_and_drops_stale_outputs(tmp_path, global_rng):
    gen = _saved_vae(tmp_path / "gen")
    like = _real_folder(tmp_path / "real")
    r = vary_folder(gen, like, tmp_path / "out", 2, 0.5, seed=3)
    assert r.written == 24
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    assert {row["source"] for row in rows} == {
        str(p.relative_to(like)) for p in like.rglob("*.png")
    }
    first = sorted((tmp_path / "out").rglob("*.png"))[0]
    before = first.read_bytes()
    first.unlink()
    again = vary_folder(gen, like, tmp_path / "out", 2, 0.5, seed=3)
    assert again.written == 2 and first.read_bytes() == before  # the same draw
    src = sorted(like.rglob("*.png"))[0]  # a source changes: its old variations go
    from PIL import Image

    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(src)
    changed = vary_folder(gen, like, tmp_path / "out", 2, 0.5, seed=3)
    assert changed.removed == 2 and changed.written == 2
    # the variations feed fine-tuning's in-batch replacement
    real = load_folder(like)
    syn = load_folder(tmp_path / "out", classes=real.classes)
    mapping = variations_of(real, syn, tmp_path / "out")
    assert all(len(v) == 2 for v in mapping)


def test_vary_folder_refuses_bad_input_before_writing(tmp_path, global_rng):
    gen = _saved_vae(tmp_path / "gen")
    like = _real_folder(tmp_path / "real")
    from augmentor.io import save_image

    save_image(like / "sneaker" / "s.png", np.zeros((16, 16, 1), np.uint8))
    with pytest.raises(GeneratorError, match="classes the generator does not know: sneaker"):
        vary_folder(gen, like, tmp_path / "out", 1, 0.5)
    with pytest.raises(GeneratorError, match=r"strength must be in \[0, 1\]"):
        vary_folder(gen, _real_folder(tmp_path / "ok"), tmp_path / "out2", 1, 2.0)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_the_filter_rejects_a_planted_wrong_class_sample_for_the_right_reason(global_rng):
    from transfer.synthetic import SyntheticFilter

    x, y = _images(10)
    real = LabelledImages.from_arrays(x[:, 0].numpy(), y.numpy(), CLASSES)
    keep = SyntheticFilter(real, CLASSES, band=(0.5, 1.0), image_size=32)
    others, oy = _images(3, offset=10)  # unseen images of the same classes
    planted = others[oy == 1][:1]  # a bag ...
    verdict = keep(
        torch.cat([others, planted]), torch.cat([oy, torch.tensor([0])])
    )  # ... as a boot
    assert not verdict.accepted[-1] and verdict.reasons[-1] in ("confidence", "centroid")
    assert verdict.accepted[:-1].float().mean() > 0.5  # most honest samples pass
    copy = keep(x[:1], y[:1])  # a training image itself: a near-duplicate
    assert not copy.accepted[0] and copy.reasons[0] == "duplicate"


def test_a_band_that_rejects_everything_names_the_class(tmp_path, global_rng):
    from transfer.synthetic import SyntheticFilter

    gen = _saved_vae(tmp_path / "gen")
    like = _real_folder(tmp_path / "real", 6)
    keep = SyntheticFilter(like, CLASSES, band=(0.999, 1.0), image_size=32)
    with pytest.raises(GeneratorError, match=r"class '\w+': only 0 of \d+ variations"):
        vary_folder(gen, like, tmp_path / "out", 1, 0.5, accept=keep, accept_name="strict")


# -- in-batch replacement and the control ---------------------------------------------------------


def _train_images(**kw) -> TrainImages:
    ds = fashion_mnist_subset("train")
    real = LabelledImages.from_arrays(ds.images[:20], ds.labels[:20], ds.classes)
    syn = LabelledImages.from_arrays(255 - ds.images[:40], np.repeat(ds.labels[:20], 2), ds.classes)
    from transfer.backbones import create_backbone

    pre = PreprocessModule(create_backbone("small_cnn", pretrained=False).preprocessing)
    return TrainImages(real, pre, None, syn, seed=7, **kw)


def test_replacement_is_seeded_by_epoch_and_index_and_keeps_labels(global_rng):
    variations = [[2 * i, 2 * i + 1] for i in range(20)]
    ds = _train_images(variations=variations, replace_p=0.5)
    assert len(ds) == 20  # replacement adds no slot
    picks = [ds.image(3, i) for i in range(20)]
    again = [ds.image(3, i) for i in reversed(range(20))][::-1]  # any order, any worker
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(picks, again))
    replaced = [not np.array_equal(img, ds.real.images[i]) for i, (img, _) in enumerate(picks)]
    assert 3 <= sum(replaced) <= 17  # about half
    assert all(lab == int(ds.real.labels[i]) for i, (_, lab) in enumerate(picks))
    other_epoch = [not np.array_equal(ds.image(4, i)[0], ds.real.images[i]) for i in range(20)]
    assert replaced != other_epoch


def test_replacement_is_the_same_with_any_worker_count(global_rng):
    from transfer.data import EpochSampler

    ds = _train_images(variations=[[i] for i in range(20)], replace_p=0.5)

    def batches(workers):
        loader = torch.utils.data.DataLoader(
            ds, batch_size=5, sampler=EpochSampler(len(ds), 1), num_workers=workers
        )
        return torch.cat([x for x, _ in loader])

    assert torch.equal(batches(0), batches(2))


def test_duplicated_reals_fill_the_synthetic_slots_with_real_images(global_rng):
    ds = _train_images(synthetic_ratio=0.0, duplicate_ratio=0.5)
    assert len(ds) == 30
    extra = [ds.image(0, i)[0] for i in range(20, 30)]
    assert all(any(np.array_equal(e, r) for r in ds.real.images) for e in extra)


def test_every_configuration_of_an_arm_makes_the_same_steps():
    base = ARMS["scratch"]
    configs = arm_configs(base, 200, synthetic=lambda r, part: "/syn")
    assert list(configs) == ["real only", "real + classic", "real + classic + synthetic", CONTROL]
    made = [c if isinstance(c, FinetuneConfig) else c(0, None) for c in configs.values()]
    assert {c.steps for c in made} == {arm_steps(base, 200)}
    assert made[3].duplicate_ratio == base.synthetic_ratio and made[3].synthetic is None
    assert made[0].preset is None and made[0].mixup == 0
    no_control = arm_configs(replace(base, synthetic_mode="replace"), 200, lambda r, p: "/s")
    assert CONTROL not in no_control


# -- a powered answer ----------------------------------------------------------------------------


def test_compare_reports_half_width_and_the_detectable_effect():
    rng = np.random.default_rng(0)
    a = rng.normal(0.70, 0.02, 6)
    scores = {
        "real + classic": [{"accuracy": v} for v in a],
        "synthetic": [{"accuracy": v + 0.004 + rng.normal(0, 0.016)} for v in a],
    }
    summary = {
        n: {"accuracy": mean_interval([s["accuracy"] for s in v])} for n, v in scores.items()
    }
    cmp = Comparison(list(scores), scores, summary, {}, 0.0, "fixed test set", 200, 1000,
                     contrasts=[("synthetic", "real + classic")])  # fmt: skip
    cmp.paired = {"synthetic": {"accuracy": cmp.difference("synthetic", "real + classic")}}
    line = cmp.power_line("synthetic", "real + classic")
    d = cmp.difference("synthetic", "real + classic")
    assert f"half-width {d.half_width * 100:.2f}" in line
    mde = detectable_effect(d.std, 6)
    assert f"detectable at 80% power: {mde * 100:.2f}" in line
    assert "too few to tell a 1-point difference" in line  # sd 1.6 points, 6 repeats
    assert "synthetic - real + classic" in cmp.table()
    assert detectable_effect(0.016, 40) < 0.01  # and enough repeats would


@pytest.mark.slow
def test_cli_sample_like_writes_variations_and_refuses_bad_input(tmp_path, global_rng):
    gen = _saved_vae(tmp_path / "gen")
    like = _real_folder(tmp_path / "real")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "sample", *map(str, args)],
            capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    ok = run(gen, tmp_path / "out", "--like", like, "--per-image", 2, "--strength", 0.3)
    assert ok.returncode == 0, ok.stderr and "written 24" in ok.stdout
    bad = run(gen, tmp_path / "x", "--like", like, "--per-image", 2, "--strength", 1.5)
    assert bad.returncode == 2 and "1.5 is not in the range" in bad.stderr
    both = run(gen, tmp_path / "y", "--like", like, "--per-class", 2)
    assert both.returncode == 2 and "--like takes --per-image" in both.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_memorisation_sees_noisy_shifted_and_mirrored_copies(global_rng):
    """Issue 20 #13: copies with N(0, 8) pixel noise counted as 0% near-duplicates."""
    from augmentor.datasets import fashion_mnist_subset
    from transfer.quality import pixel_copies

    ds = fashion_mnist_subset("train")
    real = torch.from_numpy(ds.images[:300])[:, None]
    rng = np.random.default_rng(0)
    src = ds.images[:40]
    noisy = np.clip(src + rng.normal(0, 8, src.shape), 0, 255).astype(np.uint8)
    shifted = np.pad(src, ((0, 0), (2, 0), (2, 0)))[:, :-2, :-2]
    mirrored = src[:, :, ::-1].copy()
    for copies in (noisy, shifted, mirrored):
        assert pixel_copies(real, torch.from_numpy(copies)[:, None]).float().mean() >= 0.9
    distinct = torch.from_numpy(fashion_mnist_subset("test").images[:40])[:, None]
    assert pixel_copies(real, distinct).float().mean() <= 0.05
