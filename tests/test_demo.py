"""`augment demo --quick`: the main job end to end, as a real subprocess, and its resume."""

import json
import re

import pytest
from test_cli import augment

pytestmark = pytest.mark.slow  # runs the whole job in subprocesses: `make test-slow`


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    r = augment("demo", "--quick", "--out", out, check=0)
    return out, r


def test_demo_prints_the_comparison_and_writes_the_report(quick_demo):
    out, r = quick_demo
    for name in ("real only", "real + classic", "real + classic + synthetic"):
        assert f"| {name} |" in r.stdout
    assert "baseline" in r.stdout and "KID" in r.stdout
    result = json.loads((out / "compare" / "comparison.json").read_text())
    assert result["design"] == "fixed test set"
    assert (result["n_train"], result["n_test"]) == (100, 1000)  # 10 per class, bundled test
    assert all(len(s) == 2 for s in result["scores"].values())
    for scores in result["scores"].values():
        assert all(0.0 <= s["accuracy"] <= 1.0 for s in scores)
    report = (out / "report.md").read_text()
    assert "| real + classic + synthetic |" in report
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(pictures) == 3  # confusion matrix, preview, generator samples
    for rel in pictures:
        assert (out / rel).stat().st_size > 1000, rel


def test_each_generator_learns_from_its_own_repeat_only(quick_demo):
    out, _ = quick_demo
    train = {p.stem for p in (out / "data" / "train").rglob("*.png")}
    test = {p.stem for p in (out / "data" / "test").rglob("*.png")}
    seen = []
    for r in range(2):
        gen = out / "generators" / f"repeat-{r}"
        real = {p.stem for p in (gen / "real").rglob("*.png")}
        assert len(real) == 100 and real <= train and not real & test
        seen.append(real)
        classes = sorted(p.name for p in (gen / "synthetic").iterdir() if p.is_dir())
        assert len(classes) == 10
        assert all(len(list((gen / "synthetic" / c).glob("*.png"))) == 10 for c in classes)
        meta = json.loads((gen / "generator" / "generator.json").read_text())
        assert meta["kind"] == "vae"
        quality = json.loads((gen / "quality" / "quality.json").read_text())
        assert quality["kid"] > 0 and quality["samples"] == 100
    assert seen[0] != seen[1]  # a new draw per repeat
    # the synthetic configuration of repeat r trained with repeat r's synthetic folder
    for r in range(2):
        cfg = json.loads(
            (
                out / "compare" / "real___classic___synthetic" / f"split-{r}" / "config.json"
            ).read_text()
        )
        assert cfg["synthetic"].endswith(f"repeat-{r}/synthetic")
        assert cfg["seed"] == r


def test_rerunning_the_demo_reuses_every_finished_step(quick_demo):
    out, first = quick_demo
    models = sorted(out.rglob("model.safetensors")) + sorted(out.rglob("*.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in models}
    again = augment("demo", "--quick", "--out", out, check=0)
    assert {p: p.stat().st_mtime_ns for p in models} == before
    table = first.stdout[first.stdout.index("| configuration") :].split("done in")[0]
    assert table in again.stdout
