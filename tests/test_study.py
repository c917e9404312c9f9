"""The demo's study called from Python (no subprocess): what `augment demo` prints comes back
as data, and the report is written."""

import json

import pytest

from transfer.study import QUICK, run_study


@pytest.mark.slow
def test_run_study_returns_the_comparison(tmp_path):
    from dataclasses import replace

    lines: list[str] = []
    budget = replace(QUICK, shots=5, generator_steps=8)
    result = run_study(tmp_path / "s", budget, seed=1, say=lines.append)
    assert set(result.comparisons) == {"pretrained", "scratch"}
    for arm, comparison in result.comparisons.items():
        names = comparison.names
        assert names == ["real only", "real + classic", "real + classic + synthetic",
                         "duplicated reals"]  # fmt: skip
        assert all(len(comparison.scores[n]) == budget.repeats for n in names)
        saved = json.loads((tmp_path / "s" / "compare" / arm / "comparison.json").read_text())
        assert saved["names"] == names and len(saved["contrasts"]) == 3
    assert len(result.synthetic) == budget.repeats
    assert result.report.is_file() and "| real only |" in result.report.read_text()
    assert any(line.startswith("[4/4]") for line in lines)  # the steps were reported
