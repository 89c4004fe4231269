"""The weights published in results/ (issue #14): the file is the one its README names
(sha256), it loads through ``create_model(pretrained=...)`` with its record, and it is the
trained network of the finished run, not an initialisation."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import idresnet

RESULTS = Path(__file__).resolve().parents[2] / "results" / "preact110-quarter"
WEIGHTS = RESULTS / "preact_resnet110-cifar10-quarter-seed0-fp16.safetensors"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_published_weights_are_the_file_the_readme_names():
    named = re.findall(r"sha256 `([0-9a-f]{64})`", (RESULTS / "README.md").read_text())
    assert named == [hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()]


def test_published_weights_load_with_their_record_and_are_trained():
    model = idresnet.create_model("preact_resnet110", pretrained=str(WEIGHTS)).eval()
    cfg = model.pretrained_cfg
    assert cfg["num_classes"] == 10 and cfg["classes"] == CLASSES and cfg["input_size"] == (3, 32, 32)
    assert sum(p.numel() for p in model.parameters()) == 1_727_962
    with safe_open(str(WEIGHTS), "pt") as f:
        meta = f.metadata()
        assert {f.get_tensor(k).dtype for k in f.keys() if "num_batches" not in k} == {torch.float16}
    status = json.loads((RESULTS / "status.json").read_text())
    assert status["status"] == "finished" and int(meta["iteration"]) == status["iteration"] == 16000
    assert json.loads(meta["model"]) == "preact_resnet110" and json.loads(meta["dataset"]) == "cifar10"
    # trained, not initialised: every BN's running statistics moved off their initial (0, 1)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 109 and all(m.num_batches_tracked.item() > 0 for m in bns)
    assert not any(torch.allclose(m.running_var, torch.ones_like(m.running_var)) for m in bns)
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
    assert torch.isfinite(logits).all() and logits.shape == (32, 10)


def test_published_eval_record_matches_the_run():
    ev = json.loads((RESULTS / "eval-fp16.json").read_text())
    status = json.loads((RESULTS / "status.json").read_text())
    assert ev["images"] == 10_000 and ev["model"] == "preact_resnet110"
    assert ev["error"] == pytest.approx(status["final_test_error"], abs=0.2)  # fp16 rounding of the weights


FULL = Path(__file__).resolve().parents[2] / "results" / "resnet20-full" / "resnet20-seed0-bf16"
FULL_WEIGHTS = FULL / "resnet20-cifar10-full-seed0-bf16-fp16.safetensors"


def test_full_schedule_resnet20_weights_are_the_finished_run_and_its_hub_folder_the_same_network():
    """Issue #26 item 4: the float16 file of the full-schedule run loads as ``resnet20`` with
    the run's record (64,000 iterations, CIFAR-10's classes), its evaluation agrees with the
    run's final error, and the hub folder beside it rebuilds the same network."""
    model = idresnet.create_model("resnet20", pretrained=str(FULL_WEIGHTS)).eval()
    assert model.pretrained_cfg["classes"] == CLASSES and sum(p.numel() for p in model.parameters()) == 269_722
    status = json.loads((FULL / "status.json").read_text())
    with safe_open(str(FULL_WEIGHTS), "pt") as f:
        assert int(f.metadata()["iteration"]) == status["iteration"] == 64000 and status["status"] == "finished"
    ev = json.loads((FULL / "eval-fp16.json").read_text())
    assert ev["images"] == 10_000 and ev["error"] == pytest.approx(status["final_test_error"], abs=0.2)
    hub = idresnet.from_pretrained(FULL / "hub").eval()
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(hub(x), model(x))
    card = (FULL / "hub" / "README.md").read_text()
    assert "bf16 autocast" in card and f"{status['final_test_error']:g}%" in card
