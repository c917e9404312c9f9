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


@pytest.fixture
def broken(data, tmp_path):
    """`data` with one unreadable image."""
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(data, root)
    first = sorted(root.iterdir())[0]
    (first / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def test_train_lists_skipped_images_and_exits_3_like_every_command(broken, tmp_path):
    """Issue 20 #7: train reported skips as a note and exited 0 where other commands exit 3."""
    for args in (
        ("train", "vae", broken, "--out", tmp_path / "g", "--dry-run", "--image-size", 16),
        ("preview", broken, "-o", tmp_path / "p.png", "--rows", 20),
        ("generate", broken, tmp_path / "gen", "--per-image", 1),
    ):
        r = augment(*args)
        assert r.returncode == 3, (args[0], r.stdout, r.stderr)
        assert "skipped" in r.stdout and "zz_broken.png" in r.stdout, args[0]


def test_preview_without_a_readable_image_or_into_a_folder_is_one_line(tmp_path, data):
    """Issue 20 #7/#9: a folder of unreadable files made a blank grid (exit 0); -o DIR was a
    traceback."""
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.png").write_bytes(b"no")
    r = augment("preview", tmp_path / "bad", "-o", tmp_path / "p.png")
    assert r.returncode == 2 and "holds no readable image" in r.stderr
    assert not (tmp_path / "p.png").exists()
    r = augment("preview", data, "-o", tmp_path)
    assert r.returncode == 2 and "is a directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["generate", "preview", "finetune", "train"])
def test_an_output_under_a_file_is_one_line(data, tmp_path, command):
    """Issue 20 #9: an OS error on an output path was a 26-86-line traceback."""
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "sub"
    args = {
        "generate": ("generate", data, out, "--per-image", 1),
        "preview": ("preview", data, "-o", out / "p.png"),
        "finetune": ("finetune", data, "--out", out, "--backbone", "small_cnn", "--epochs", 1),
        "train": ("train", "vae", data, "--out", out, "--steps", 2, "--image-size", 28),
    }[command]
    r = augment(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "file" in lines[0], r.stderr


def test_a_library_bound_is_named_as_the_option(data, tmp_path):
    """Issue 20 #17: `--minutes nan` said "cannot convert float NaN to integer", and errors
    raised below the CLI named library fields instead of options."""
    r = augment("train", "vae", data, "--out", tmp_path / "g", "--minutes", "nan", "--dry-run")
    assert r.returncode == 2
    assert r.stderr.strip() == "Error: '--minutes' must be a finite number > 0, got nan"


def test_broken_symlinks_are_skipped_and_empty_classes_refused(data, tmp_path):
    """Issue 20 #7: dangling symlinks and symlink loops named *.png were dropped silently; an
    empty class folder became a class the model could never learn."""
    import shutil

    root = tmp_path / "d"
    shutil.copytree(data, root)
    first = sorted(root.iterdir())[0]
    (first / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (first / "loop.png").symlink_to(first / "loop.png")
    r = augment("generate", root, tmp_path / "g", "--per-image", 1)
    assert r.returncode == 3 and "dangling.png" in r.stdout and "loop.png" in r.stdout
    (first / "dangling.png").unlink()
    (first / "loop.png").unlink()
    (root / "empty class").mkdir()
    r = augment("finetune", root, "--out", tmp_path / "run", "--backbone", "small_cnn")
    assert r.returncode == 2 and "['empty class'] hold no readable image" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["finetune", "train"])
def test_a_class_folder_name_that_is_not_utf8_is_refused_before_training(data, tmp_path, command):
    """Issue 20 #8: it trained, then failed writing the report (exit 2, no report.md)."""
    import os
    import shutil

    root = tmp_path / "d"
    shutil.copytree(data, root)
    first = sorted(root.iterdir())[0]
    os.rename(first, os.path.join(os.fsencode(root), b"caf\xe9"))
    args = {
        "finetune": ("finetune", root, "--out", tmp_path / "run", "--backbone", "small_cnn"),
        "train": ("train", "vae", root, "--out", tmp_path / "run", "--steps", 2),
    }[command]
    r = augment(*args)
    assert r.returncode == 2 and "b'caf\\xe9' is not valid UTF-8" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


def test_generate_from_a_generator_refuses_pipelines_and_compare_foreign_classes(
    data, tmp_path, global_rng
):
    """Issue 20 #12: `generate GEN DST --preset P` ignored the preset; `compare --synthetic`
    with a class DATA lacks failed only after the first configurations had trained."""
    from augmentor.generators import generator_class
    from augmentor.generators.common import save_generator

    model = generator_class("gan")(image_size=16, channels=1, num_classes=3, base_channels=8)
    meta = {"kind": "gan", "image_size": 16, "channels": 1, "data_fingerprint": "x"}
    save_generator(model, tmp_path / "gen", {**meta, "class_names": ["a", "b", "c"]})
    r = augment("generate", tmp_path / "gen", tmp_path / "o", "--per-class", 2, "--preset", "light")
    assert r.returncode == 2 and "a saved generator takes neither" in r.stderr
    syn = tmp_path / "syn" / "not a class"
    syn.mkdir(parents=True)
    (syn / "x.png").write_bytes(next(next(data.iterdir()).glob("*.png")).read_bytes())
    r = augment(
        "compare",
        data,
        "--out",
        tmp_path / "c",
        "--preset",
        "light",
        "--synthetic",
        tmp_path / "syn",
    )
    assert r.returncode == 2 and "has classes DATA does not: not a class" in r.stderr, r.stderr
    assert not (tmp_path / "c").exists()


def test_a_file_missing_at_run_time_exits_1_a_bad_path_2(tmp_path):
    """Issue 20 #17: ENOENT is a bad path given (2) only when the user gave that path or a
    folder on it is missing; a file gone from an existing folder is a run-time failure (1)."""
    from cli.errors import EXIT_FAILED, EXIT_USAGE
    from cli.main import os_error_exit

    def error_of(path):
        try:
            open(path, "rb")
        except OSError as e:
            return e
        raise AssertionError(f"{path} opened")

    (tmp_path / "cache").mkdir()
    gone = error_of(tmp_path / "cache" / "x.npy")
    assert os_error_exit(gone, [str(tmp_path / "data")]) == EXIT_FAILED
    assert os_error_exit(gone, [str(tmp_path / "cache" / "x.npy")]) == EXIT_USAGE
    under_missing = error_of(tmp_path / "no-such-folder" / "out.png")
    assert os_error_exit(under_missing, ["-o", str(tmp_path / "no-such-folder")]) == EXIT_USAGE


def test_exit_codes_1_and_130(data, tmp_path):
    """Issue 20 #17: a documented exit code for each outcome, the same in every command (0, 2
    and 3 are checked throughout these tests): 1 a failure at run time, 130 interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from test_cli import ROOT

    r = augment(
        "finetune", data, "--out", tmp_path / "run", "--backbone", "small_cnn", "--no-pretrained",
        "--strategy", "full", "--lr", 1000, "--head-lr", 1000, "--epochs", 3,
    )  # fmt: skip
    assert r.returncode == 1 and "diverged" in r.stderr.lower(), r.stderr[-400:]
    dst = tmp_path / "gen"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "generate", str(data), str(dst), "--per-image", "400"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and len(list(dst.rglob("*.png"))) < 20:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun the same command to resume" in err, err[-400:]
