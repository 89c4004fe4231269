"""benchmarks/malloc_keep.py: ``idresnet train --malloc keep`` against ``--malloc system`` in
alternating training processes. Its summary is checked on made-up runs (fast), and the
whole driver runs on a tiny network (slow). Never how fast: no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchscripts import load


def _run(setting: str, step: str, speed: float, faults: float) -> dict:
    return {"model": "m", "step": step, "malloc": setting, "images_per_s": speed, "page_faults_per_iteration": faults}


def test_the_ratio_is_the_median_of_each_rounds_pair():
    mk = load("malloc_keep")
    runs = [  # round 1: keep then system; round 2: system then keep
        _run("keep", "eager", 30.0, 0),
        _run("system", "eager", 20.0, 1000),
        _run("keep", "compiled", 12.0, 10),
        _run("system", "compiled", 10.0, 900),
        _run("system", "eager", 25.0, 1200),
        _run("keep", "eager", 25.0, 2),
        _run("system", "compiled", 10.0, 700),
        _run("keep", "compiled", 10.0, 30),
    ]
    rows = {r["step"]: r for r in mk.summarize(runs)}
    assert rows["eager"]["ratios"] == pytest.approx([1.5, 1.0]) and rows["eager"]["ratio"] == pytest.approx(1.25)
    assert rows["compiled"]["ratios"] == pytest.approx([1.2, 1.0])
    assert rows["compiled"]["keep_page_faults_per_iteration"] == 20
    meta = dict(cpu="a CPU", cores=2, threads=1, torch="2.13.0", load_start=[0.1], load_end=[0.2], date="d")
    meta.update(command="cmd", batch_size=128, iterations=24, skip=8, rounds=2)
    text = mk.markdown(mk.summarize(runs), meta)
    assert "| m | eager | 27.5 | 22.5 | 1.25x (1.50, 1.00) | 1 | 1,100 |" in text
    assert "2 rounds, the two settings' order swapped" in text and "**a CPU** (2 cores)" in text


@pytest.mark.slow
def test_the_driver_runs_both_settings_in_alternating_processes(tmp_path):
    mk = load("malloc_keep")
    out = tmp_path / "malloc"
    argv = ["--models", "preact_resnet20", "--steps", "eager", "--batch-size", "16", "--train-size", "64"]
    summary = mk.main([*argv, "--iterations", "4", "--skip", "2", "--rounds", "2", "--out", str(out)])
    assert [r["step"] for r in summary] == ["eager"]
    saved = json.loads(Path(f"{out}.json").read_text())
    assert [r["malloc"] for r in saved["runs"]] == ["keep", "system", "system", "keep"]
    assert all(r["images_per_s"] > 0 and r["page_faults_per_iteration"] > 0 for r in saved["runs"])
    assert len(summary[0]["ratios"]) == 2
    assert "keep / system" in Path(f"{out}.md").read_text()
