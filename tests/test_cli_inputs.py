"""Bad combinations are refused in one line before any work (issue 20, items 2, 12, 17)."""

import pytest
from test_cli import augment

from augmentor.datasets import fashion_mnist_subset
from augmentor.io import write_image_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs") / "data"
    ds = fashion_mnist_subset("train")
    keep = [i for c in range(3) for i in (ds.labels == c).nonzero()[0][:6]]
    write_image_folder(root, ds.images[keep], ds.labels[keep], ds.classes[:3])
    return root


@pytest.mark.parametrize(
    "args",
    [
        ("finetune", "{data}", "--out", "{data}/run"),
        ("train", "vae", "{data}", "--out", "{data}/gen"),
        ("compare", "{data}", "--out", "{data}/cmp", "--preset", "light"),
        ("evaluate", "{tmp}/run", "{data}", "--out", "{data}/ev"),
        ("audit", "{data}", "--out", "{data}/a"),
    ],
)
def test_an_output_inside_its_input_is_refused(data, tmp_path, args):
    r = augment(*(a.format(data=data, tmp=tmp_path) for a in args))
    assert r.returncode == 2 and "is inside DATA" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert len(list(data.iterdir())) == 3  # nothing was written into DATA


def test_preset_and_pipeline_together_are_refused(data, tmp_path):
    pipe = tmp_path / "p.yaml"
    pipe.write_text("- op: HorizontalFlip\n  p: 0.5\n")
    r = augment("finetune", data, "--out", tmp_path / "r", "--preset", "light", "--pipeline", pipe)
    assert r.returncode == 2 and "--preset and --pipeline are mutually exclusive" in r.stderr
    assert not (tmp_path / "r").exists()


def test_no_advertisement_in_a_training_run(tmp_path, capfd):
    from augmentor.trainer import build_trainer

    build_trainer(tmp_path, max_steps=1, progress=False)
    out, err = capfd.readouterr()
    assert "Tip:" not in out + err


@pytest.mark.parametrize(
    ("kind", "option", "owner"),
    [("vae", "--no-diffaugment", "GAN"), ("diffusion", "--no-class-bn", "GAN"),
     ("gan", "--beta=2", "VAE"), ("gan", "--perceptual=1", "VAE")],
)  # fmt: skip
def test_a_generator_option_of_another_kind_is_refused(data, tmp_path, kind, option, owner):
    r = augment("train", kind, data, "--out", tmp_path / "g", option)
    name = option.split("=")[0]
    assert r.returncode == 2 and f"{name} is a {owner} option, not {kind}'s" in r.stderr
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("devices", ["-1", "0,1"])
def test_devices_this_machine_lacks_are_refused_before_any_work(data, tmp_path, devices):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a machine with GPUs has device indices")
    for cmd in (("finetune", data), ("train", "vae", data)):
        r = augment(
            *cmd,
            "--out",
            tmp_path / "r",
            "--devices",
            devices,
            "--epochs" if cmd[0] == "finetune" else "--steps",
            1,
        )
        assert r.returncode == 2 and "this machine has none" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_device_counts_below_one_are_refused(data, tmp_path):
    r = augment("finetune", data, "--out", tmp_path / "r", "--devices", "0")
    assert r.returncode == 2 and "a count must be >= 1" in r.stderr
