"""``idresnet train`` on the command line: flags, config files, one-line errors, exit codes."""

import json

import pytest
import torch
import yaml

from idresnet.cli.main import main
from idresnet.training.config import FIELDS
from idresnet.training.metrics import read_metrics

TINY = [
    "--model",
    "preact_resnet20",
    "--model-kwargs",
    "width=0.25",
    "--dataset",
    "synthetic",
    "--train-size",
    "128",
    "--test-size",
    "32",
    "--batch-size",
    "32",
    "--iterations",
    "8",
    "--lr-milestones",
    "4",
    "6",
    "--warmup-iters",
    "1",
    "--log-interval",
    "2",
    "--eval-interval",
    "4",
    "--no-progress",
]


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def one_error_line(capsys, prefix="idresnet train: error: "):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    return lines[0]


def test_smoke_run_writes_the_whole_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = exit_code(["train", *TINY, "--out", str(out), "--fail-threshold", "100"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert stdout.strip().splitlines()[-1].startswith(f"finished: {out} after 8 iterations")
    for name in ("config.yaml", "metrics.csv", "status.json", "weights.safetensors", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "status.json").read_text())["status"] == "finished"
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["lr_milestones"] == [4, 6] and recorded["model_kwargs"] == {"width": 0.25}


def test_config_file_then_flags(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 0.05\nseed: 7\nweight_decay: 0.0005\n")
    out = tmp_path / "run"
    exit_code(["train", "-c", str(cfg), *TINY, "--seed", "3", "--out", str(out)])
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert (recorded["lr"], recorded["seed"], recorded["weight_decay"]) == (0.05, 3, 0.0005)


def test_every_config_key_is_a_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert all("--" + name.replace("_", "-") in text for name in FIELDS)


def test_unknown_flag_lists_the_valid_ones(capsys):
    assert exit_code(["train", "--model", "resnet20", "--learning-rate", "0.1"]) == 2
    line = one_error_line(capsys)
    assert "'--learning-rate'" in line and "--lr" in line and "--lr-milestones" in line


def test_abbreviations_are_not_accepted(capsys):
    assert exit_code(["train", "--model", "resnet20", "--lr-m", "5"]) == 2
    one_error_line(capsys)


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--model", "resnet20", "--amp", "fp16"], "unknown amp 'fp16'; valid: auto, bf16, off"),
        (["--model", "resnet20", "--batch-size", "many"], "invalid batch_size 'many'"),
        (["--model", "resnet21"], "unknown model 'resnet21'"),
        (["--dataset", "synthetic"], "no model given"),
        (["--model", "resnet20", "--model-kwargs", "depth"], "KEY=VALUE"),
        (["--model", "resnet20", "--lr"], "expected one argument"),
    ],
)
def test_bad_values_are_one_line_exit_2(capsys, argv, text):
    assert exit_code(["train", *argv]) == 2
    assert text in one_error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    assert exit_code(["train", *TINY, "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA device; valid here: auto, cpu" in one_error_line(capsys)


def test_unknown_model_option_is_one_line(tmp_path, capsys):
    argv = ["train", *TINY, "--model-kwargs", "widht=0.5", "--out", str(tmp_path / "r")]
    assert exit_code(argv) == 2
    assert "unknown model option 'widht'" in one_error_line(capsys)


def test_missing_config_file(capsys, tmp_path):
    assert exit_code(["train", "-c", str(tmp_path / "nope.yaml"), "--model", "resnet20"]) == 2
    assert "no such file" in one_error_line(capsys)


def test_finished_run_is_refused_then_resume_reports_it(tmp_path, capsys):
    out = tmp_path / "run"
    first = exit_code(["train", *TINY, "--out", str(out)])
    capsys.readouterr()
    assert exit_code(["train", *TINY, "--out", str(out)]) == 2
    assert "pass --resume" in one_error_line(capsys)
    assert exit_code(["train", "--resume", "--out", str(out)]) == first  # flags come from the run
    assert f"{out} after 8 iterations" in capsys.readouterr().out


def test_resume_without_a_run_says_so(tmp_path, capsys):
    """Issue #23: these said "no model given"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (empty, tmp_path / "missing"):
        assert exit_code(["train", "--resume", "--out", str(out)]) == 2
        assert f"--resume: {out} holds no run to continue" in one_error_line(capsys)
    assert exit_code(["train", "--resume"]) == 2
    assert "--resume needs --out RUN" in one_error_line(capsys)
    assert not (tmp_path / "missing").exists()


def test_iterations_get_the_schedule_asked_for_and_the_record_says_so(tmp_path, capsys):
    """Issue #23: docs/training.md's smoke run (--iterations 200 --lr-milestones 100 150)
    warmed up for the recipe's 400 iterations, so it trained at lr 0.01 throughout and its
    status said "a reduced schedule (budget 1)". Now the warm-up is scaled with the
    iterations (400 x 200 / 64,000 = 1), the lr drops where asked, and the record says so."""
    out = tmp_path / "run"
    schedule = ["--iterations", "200", "--lr-milestones", "100", "150", "--log-interval", "1", "--eval-interval", "200"]
    small = ["--model", "preact_resnet20", "--model-kwargs", "width=0.25", "depth=8", "--dataset", "synthetic"]
    small += ["--batch-size", "8", "--train-size", "32", "--test-size", "32", "--no-progress"]
    argv = ["train", *small, *schedule, "--out", str(out)]
    assert exit_code(argv) == 0
    lr = {int(r["iteration"]): float(r["lr"]) for r in read_metrics(out / "metrics.csv")}
    assert [lr[i] for i in (1, 2, 100, 101, 150, 151, 200)] == [0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["warmup_iters"] == 1 and recorded["run_info"]["schedule"]["warmup_iters"] == 1
    message = json.loads((out / "status.json").read_text())["message"]
    assert message.endswith("a reduced schedule (200 of 64,000 iterations)"), message


def test_a_warmup_past_the_first_milestone_is_one_line(tmp_path, capsys):
    argv = ["train", *TINY, "--warmup-iters", "4", "--out", str(tmp_path / "r")]  # TINY drops lr at 4
    assert exit_code(argv) == 2
    assert "a warm-up of 4 iterations reaches the first lr milestone (4)" in one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_diverging_run_exit_code_and_no_traceback(tmp_path, capsys):
    out = tmp_path / "run"
    assert exit_code(["train", *TINY, "--lr", "1e6", "--warmup-iters", "0", "--out", str(out)]) == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out.strip().splitlines()[-1].startswith("diverged:")
    assert json.loads((out / "status.json").read_text())["status"] == "diverged"


def test_failed_run_exit_code(tmp_path, capsys):
    assert exit_code(["train", *TINY, "--fail-threshold", "0", "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("failed:")
