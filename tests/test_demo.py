"""`augment demo --quick`: the main job end to end, as a real subprocess, and its resume."""

import json
import re
from pathlib import Path

import pytest
from test_cli import augment

pytestmark = pytest.mark.slow  # runs the whole job in subprocesses: `make test-slow`

ARMS = ("pretrained", "scratch")
NAMES = ("real only", "real + classic", "real + classic + synthetic", "duplicated reals")


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    r = augment("demo", "--quick", "--out", out, check=0)
    return out, r


def test_demo_prints_both_arms_with_the_control_and_writes_the_report(quick_demo):
    out, r = quick_demo
    for name in NAMES:
        assert r.stdout.count(f"| {name} |") == 2  # one table per arm
    assert "baseline" in r.stdout and "detectable at 80% power" in r.stdout
    assert "too few to tell a 1-point difference" in r.stdout  # 2 repeats: said plainly
    for arm in ARMS:
        result = json.loads((out / "compare" / arm / "comparison.json").read_text())
        assert result["design"] == "fixed test set"
        assert (result["n_train"], result["n_test"]) == (100, 1000)  # 10/class, bundled test
        assert result["names"] == list(NAMES)
        assert all(len(s) == 2 for s in result["scores"].values())
        assert all(0.0 <= s["accuracy"] <= 1.0 for v in result["scores"].values() for s in v)
    report = (out / "report.md").read_text()
    assert "## Pretrained arm" in report and "## From-scratch arm" in report
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(pictures) == 3  # confusion matrix, variations beside sources, preview
    for rel in pictures:
        assert (out / rel).stat().st_size > 500, rel


def test_each_repeat_s_synthetic_images_come_from_its_own_images_only(quick_demo):
    out, _ = quick_demo
    train = {p.stem for p in (out / "data" / "train").rglob("*.png")}
    test = {p.stem for p in (out / "data" / "test").rglob("*.png")}
    seen = []
    for r in range(2):
        syn = out / "synthetic" / f"repeat-{r}"
        real = {p.stem for p in (syn / "real").rglob("*.png")}
        assert len(real) == 100 and real <= train and not real & test
        seen.append(real)
        manifest = (syn / "variations" / "manifest.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in manifest]
        assert any("output" in row for row in rows)
        sources = {Path(row["source"]).stem for row in rows}
        assert sources <= real  # every variation names a source of this repeat
        meta = json.loads((syn / "generator" / "generator" / "generator.json").read_text())
        assert meta["kind"] == "vae"
        assert json.loads((syn / "variations" / "filter.json").read_text())["acceptance"]
    assert seen[0] != seen[1]  # a new draw per repeat
    # the synthetic configuration of repeat r trained with repeat r's variations
    for arm in ARMS:
        for r in range(2):
            run = out / "compare" / arm / "real___classic___synthetic" / f"split-{r}"
            cfg = json.loads((run / "config.json").read_text())
            assert cfg["synthetic"].endswith(f"repeat-{r}/variations")
            control = out / "compare" / arm / "duplicated_reals" / f"split-{r}" / "config.json"
            assert json.loads(control.read_text())["duplicate_ratio"] == cfg["synthetic_ratio"]
            assert json.loads(control.read_text())["steps"] == cfg["steps"]


def test_rerunning_the_demo_reuses_every_finished_step(quick_demo):
    out, first = quick_demo
    models = sorted(out.rglob("*.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in models}
    again = augment("demo", "--quick", "--out", out, check=0)
    assert {p: p.stat().st_mtime_ns for p in models} == before
    table = first.stdout[first.stdout.index("| configuration") :].split("done in")[0]
    assert table in again.stdout
