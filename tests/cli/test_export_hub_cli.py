"""``idresnet export --format hub``: a folder in huggingface_hub's layout from a run folder, a
checkpoint or a weights file, whose model card takes the run's recipe, seed and hardware
from its config.yaml; bad outputs are one line, exit 2, and nothing already saved is lost."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from test_train_cli import TINY, exit_code, one_error_line

import idresnet
from idresnet.cli.main import main
from idresnet.factory import build_from_weights
from idresnet.files import file_digest
from idresnet.weights import read_weights
from idresnet.weights.hubfolder import CARD, CONFIG, WEIGHTS

RESULTS = Path(__file__).resolve().parents[2] / "results" / "preact110-quarter"
PUBLISHED = RESULTS / "preact_resnet110-cifar10-quarter-seed0-fp16.safetensors"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export-hub") / "run"
    assert main(["train", *TINY, "--seed", "5", "--out", str(out), "--fail-threshold", "100"]) == 0
    return out


def card_rows(folder: Path) -> dict:
    """The model card's table: ``{row name: text}``."""
    cells = [line.strip().strip("|").split(" | ", 1) for line in (folder / CARD).read_text().splitlines()]
    return {c[0].strip(): c[1].strip() for c in cells if len(c) == 2 and c[0].strip()}


def same_network(a, b) -> bool:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items()) and torch.equal(a(x), b(x))


def test_hub_export_of_a_run_folder(run, tmp_path, capsys):
    out = tmp_path / "hub"
    capsys.readouterr()
    assert main(["export", "--weights", str(run), "--format", "hub", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} ({WEIGHTS} sha256 {file_digest(out / WEIGHTS)})"
    assert sorted(p.name for p in out.iterdir()) == [CARD, CONFIG, WEIGHTS]
    assert same_network(idresnet.from_pretrained(out), build_from_weights(*read_weights(run)[:2]))
    rows = card_rows(out)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert rows["seeds"] == "5" and rows["recipe"].startswith("SGD (momentum 0.9, weight decay 0.0001), batch 32, ")
    assert " 8 iterations, lr 0.1 x0.1 at [4, 6], warmup 1 iterations at 0.01" in rows["recipe"]
    assert rows["recipe"].endswith(" of the paper's schedule, float32")  # the precision it trained in
    assert rows["hardware"].startswith(f"{config['run_info']['device_name']}, 1 process, torch {torch.__version__}")
    status = json.loads((run / "status.json").read_text())
    assert rows["final test error"].startswith(f"{status['final_test_error']:g}% (accuracy ")
    assert f"`weights.safetensors` (sha256 `{file_digest(run / 'weights.safetensors')}`)" == rows["exported from"]
    assert json.loads((out / CONFIG).read_text())["model_args"]["width"] == 0.25


def test_hub_export_of_a_checkpoint_and_the_default_folder(run, tmp_path):
    assert main(["export", "--weights", str(run / "checkpoints" / "last.ckpt"), "--format", "hub"]) == 0
    out = run / "checkpoints" / "preact_resnet20-hub"  # beside the weights, as the other formats
    assert card_rows(out)["seeds"] == "5"  # the run's config.yaml, one folder up from checkpoints/
    assert same_network(idresnet.from_pretrained(out), build_from_weights(*read_weights(run)[:2]))
    assert main(["export", "--weights", str(out), "--out", str(tmp_path / "again.safetensors")]) == 0  # hub folder in


def test_hub_export_of_a_lone_file_says_unknown(run, tmp_path):
    lone = tmp_path / "lone" / "w.safetensors"
    lone.parent.mkdir()
    lone.write_bytes((run / "weights.safetensors").read_bytes())
    assert main(["export", "--weights", str(lone), "--format", "hub", "--out", str(tmp_path / "hub")]) == 0
    rows = card_rows(tmp_path / "hub")
    assert rows["recipe"] == rows["seeds"] == rows["hardware"] == "unknown"
    assert rows["final test error"] != "unknown"  # the weights' record has it


def test_hub_export_of_the_published_weights(tmp_path):
    out = tmp_path / "hub"
    argv = ["export", "--weights", str(PUBLISHED), "--format", "hub", "--dtype", "float16", "--out", str(out)]
    assert main(argv) == 0
    rows = card_rows(out)
    assert rows["published by idresnet"].startswith("preact ResNet-110 trained by idresnet at a quarter")
    assert rows["final test error"].startswith("12.63% (accuracy 87.37%) at iteration 16000")
    assert rows["seeds"] == "0" and "budget 0.25" in rows["recipe"]  # the run's config.yaml copied beside it
    assert "CIFAR-10 (JPEG q75 copy" in rows["data"] and "float16" in rows["weights"]
    front = yaml.safe_load((out / CARD).read_text().split("---\n")[1])
    assert front["datasets"] == ["cifar10"] and front["library_name"] == "idresnet"
    model = idresnet.from_pretrained(out)
    reference = idresnet.create_model("preact_resnet110", pretrained=str(PUBLISHED))
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())
    assert model.pretrained_cfg["mean"] == reference.pretrained_cfg["mean"]


def test_hub_export_over_a_hub_folder_and_into_a_clone_of_a_hub_repository(run, tmp_path):
    out = tmp_path / "hub"
    for _ in range(2):
        assert main(["export", "--weights", str(run), "--format", "hub", "--out", str(out)]) == 0
    assert idresnet.from_pretrained(out).num_classes == 10
    clone = tmp_path / "clone"  # `git clone` of an empty Hub model repository: hidden files only
    (clone / ".git").mkdir(parents=True)
    (clone / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    assert main(["export", "--weights", str(run), "--format", "hub", "--out", str(clone)]) == 0
    assert (clone / ".gitattributes").read_text() == "*.safetensors filter=lfs\n" and (clone / CONFIG).is_file()


@pytest.mark.parametrize(
    "out, text",
    [
        ("model.safetensors", "--format hub writes a folder (config.json (architecture, model_args, num_classes),"),
        ("a-file", "--format hub writes a folder"),
        ("RUN", "run holds other files (checkpoints, config.yaml, metrics.csv); give a new or empty folder"),
        ("stuff", "holds other files (notes.txt); give a new or empty folder, or a hub folder to overwrite"),
        ("card", "holds README.md but no config.json; give a new or empty folder, or a hub folder to overwrite"),
    ],
)
def test_bad_hub_outputs_are_one_line_and_lose_nothing(run, tmp_path, capsys, out, text):
    (tmp_path / "a-file").write_text("keep me")
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("keep me")
    (tmp_path / "card").mkdir()
    (tmp_path / "card" / "README.md").write_text("my own card")
    target = run if out == "RUN" else tmp_path / out
    before = {p: p.read_bytes() for p in sorted(target.rglob("*") if target.is_dir() else [target]) if p.is_file()}
    capsys.readouterr()
    assert exit_code(["export", "--weights", str(run), "--format", "hub", "--out", str(target)]) == 2
    assert text in one_error_line(capsys, "idresnet export: error: ")
    after = {p: p.read_bytes() for p in sorted(target.rglob("*") if target.is_dir() else [target]) if p.is_file()}
    assert after == before


def test_hub_export_of_a_hub_folder_missing_its_weights_is_one_line(run, tmp_path, capsys):
    assert main(["export", "--weights", str(run), "--format", "hub", "--out", str(tmp_path / "hub")]) == 0
    (tmp_path / "hub" / WEIGHTS).unlink()
    capsys.readouterr()
    argv = ["export", "--weights", str(tmp_path / "hub"), "--format", "hub", "--out", str(tmp_path / "h2")]
    assert exit_code(argv) == 2
    assert f"{tmp_path / 'hub'} holds none of weights.safetensors, checkpoints/last.ckpt (a run folder) or " in (
        one_error_line(capsys, "idresnet export: error: ")
    )
    assert not (tmp_path / "h2").exists()
