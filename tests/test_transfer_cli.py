"""`augment finetune / predict / evaluate / compare`, run as real subprocesses."""

import json
import re
import shutil

import pytest
from test_cli import augment

FAST = [
    "--backbone",
    "small_cnn",
    "--no-pretrained",
    "--epochs",
    "2",
    "--probe-epochs",
    "2",
    "--strategy",
    "full",
]


@pytest.fixture(scope="module")
def run_dir(fmnist_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    mix = ["--mixup", "0.2", "--cutmix", "1.0", "--crop-pct", "backbone"]
    r = augment(
        "finetune", fmnist_folder, "--out", out, *FAST, *mix, "--val-fraction", "0.34", check=0
    )
    assert "validation: accuracy" in r.stdout and "report" in r.stdout
    # issue 20 #17: Lightning's bar wrote to stdout, mixed with the results
    assert "it/s]" not in r.stdout and "it/s]" in r.stderr
    config = json.loads((out / "config.json").read_text())
    assert (config["mixup"], config["cutmix"], config["crop_pct"]) == (0.2, 1.0, None)
    return out


@pytest.mark.slow
def test_finetune_then_predict(run_dir, fmnist_folder):
    images = sorted(fmnist_folder.rglob("*.png"))[:2]
    r = augment("predict", run_dir, *images, "--top-k", "2", "--json", check=0)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["image"] for row in rows] == [str(p) for p in images]
    labels = json.loads((run_dir / "labels.json").read_text())
    assert all(len(row["top"]) == 2 and row["top"][0]["class"] in labels for row in rows)
    r = augment("predict", run_dir, images[0], check=0)
    assert r.stdout.startswith(f"{images[0]}: ")


@pytest.mark.slow
def test_predict_reports_unreadable_images(run_dir, fmnist_folder, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    good = sorted(fmnist_folder.rglob("*.png"))[0]
    r = augment("predict", run_dir, good, bad, check=3)
    assert f"{bad}: error" in r.stderr and str(good) in r.stdout


@pytest.mark.slow
def test_evaluate_writes_a_report(run_dir, fmnist_folder, tmp_path):
    r = augment("evaluate", run_dir, fmnist_folder, "--out", tmp_path / "rep", check=0)
    assert "accuracy" in r.stdout
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["n"] == 18 and len(metrics["per_class"]) == 3
    assert (tmp_path / "rep" / "confusion.png").stat().st_size > 1000
    # evaluate answers as the exported model does: the run's fitted temperature, reported
    saved = json.loads((run_dir / "calibration.json").read_text())
    assert saved["fitted_on"] == "validation"
    calib = metrics["calibration"]
    assert calib["temperature"] == saved["temperature"] and "ece_after" in calib
    assert (tmp_path / "rep" / "reliability.png").stat().st_size > 1000
    assert "temperature" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.slow
def test_evaluate_run_missing_a_file(run_dir, fmnist_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "model.safetensors").unlink()
    r = augment("evaluate", broken, fmnist_folder, check=2)
    assert r.stderr.startswith("Error:") and "model.safetensors is missing" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_finetune_bad_input_is_one_line(fmnist_folder, tmp_path):
    one = tmp_path / "one"
    shutil.copytree(
        fmnist_folder / sorted(p.name for p in fmnist_folder.iterdir())[0], one / "only"
    )
    r = augment("finetune", one, "--out", tmp_path / "o1", *FAST, check=2)
    assert "at least 2 classes" in r.stderr and "Traceback" not in r.stderr

    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    r = augment(
        "finetune",
        fmnist_folder,
        "--out",
        tmp_path / "o2",
        "--backbone",
        "small_cnn",
        "--weights",
        junk,
        check=2,
    )
    assert "not a state_dict" in r.stderr and "Traceback" not in r.stderr

    r = augment(
        "finetune", fmnist_folder, "--out", tmp_path / "o3", "--backbone", "resnet_99", check=2
    )
    assert "unknown backbone 'resnet_99'" in r.stderr

    r = augment("finetune", fmnist_folder, "--out", tmp_path / "o4", "--crop-pct", "0.3", check=2)
    assert "'--crop-pct'" in r.stderr and "0.3" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o4").exists()
    r = augment("finetune", fmnist_folder, "--out", tmp_path / "o4", "--crop-pct", "most", check=2)
    assert "'--crop-pct'" in r.stderr and "'most'" in r.stderr and "'backbone'" in r.stderr
    r = augment("finetune", fmnist_folder, "--out", tmp_path / "o5", "--cutmix", "-1", check=2)
    assert "'--cutmix'" in r.stderr and "-1" in r.stderr and "Traceback" not in r.stderr

    few = tmp_path / "few"
    shutil.copytree(fmnist_folder, few)
    cls = sorted(p for p in few.iterdir())[1]
    for p in sorted(cls.iterdir())[1:]:
        p.unlink()
    r = augment("finetune", few, "--out", tmp_path / "o5", *FAST, "--val-fraction", "0.2", check=2)
    assert f"'{cls.name}' has 1" in r.stderr


@pytest.mark.slow
def test_compare_prints_paired_differences_and_resumes(fmnist_folder, tmp_path):
    args = [
        "compare",
        fmnist_folder,
        "--out",
        tmp_path / "cmp",
        *FAST,
        "--repeats",
        "2",
        "--test-fraction",
        "0.34",
        "--preset",
        "light",
    ]
    r = augment(*args, check=0)
    assert "real only" in r.stdout and "real + classic" in r.stdout and "baseline" in r.stdout
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert len(data["scores"]["real only"]) == 2
    assert "real + classic" in data["paired"]
    again = augment(*args, check=0)
    assert again.stdout == r.stdout  # finished runs are reused, identical table


def test_backbones_command_lists_the_registry():
    r = augment("backbones", check=0)
    assert "efficientnet_lite0" in r.stdout and "small_cnn" in r.stdout


def test_tune_then_finetune_with_its_pipeline_and_tta(fmnist_folder, tmp_path):
    out = tmp_path / "tune"
    args = ["--backbone", "small_cnn", "--no-pretrained", "--views", "2", "--repeats", "3"]
    r = augment("tune", fmnist_folder, "--out", out, "--minutes", "1", *args,
                "--confirm-steps", "0", check=0)  # fmt: skip
    assert "pipeline.yaml" in r.stdout and "--tta" in r.stdout
    assert (out / "tune.md").is_file()
    tta = r.stdout.split("test-time augmentation: --tta ")[1].split()[0]
    run = tmp_path / "run"
    augment("finetune", fmnist_folder, "--out", run, *FAST, "--pipeline", out / "pipeline.yaml",
            "--tta", tta, "--no-export", check=0)  # fmt: skip
    assert json.loads((run / "calibration.json").read_text())["tta"] == tta


def test_tune_and_tta_errors_are_one_line(fmnist_folder, tmp_path):
    r = augment("finetune", fmnist_folder, "--out", tmp_path / "r", "--tta", "flp", check=2)
    assert "did you mean 'flip'" in r.stderr and "Traceback" not in r.stderr
    # 3 classes x 6 images: holding out 30% needs at least 4 per class; fine here, but
    # --repeats 1 cannot give an interval
    r = augment("tune", fmnist_folder, "--out", tmp_path / "t", "--repeats", "1", check=2)
    assert "--repeats" in r.stderr and "Traceback" not in r.stderr
    # 40 views of 18 images at 224 px: about half a minute a candidate on any CPU
    r = augment("tune", fmnist_folder, "--out", tmp_path / "t", "--minutes", "0.1", "--views",
                "40", check=2)  # fmt: skip
    assert re.search(r"minutes' must be at least [0-9.]+ to score two", r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
