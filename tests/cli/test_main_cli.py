"""The ``idresnet`` entry point: a closed pipe ends quietly; unknown names get suggestions."""

import os
import subprocess
import sys

import pytest
from test_train_cli import exit_code

from idresnet.cli.main import BROKEN_PIPE

COMMAND = [sys.executable, "-m", "idresnet.cli.main"]


def quiet_env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_output_cut_short_by_head_is_a_quiet_exit():
    """Issue #23: ``idresnet reproduce --list | head -2`` printed "error: Broken pipe", exit 2."""
    shell = f"{' '.join(COMMAND)} reproduce --list | head -2; echo status ${{PIPESTATUS[0]}} >&2"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120, env=quiet_env())
    assert len(proc.stdout.splitlines()) == 2 and proc.stdout.startswith("table1: ")
    assert proc.stderr.splitlines()[-1] in ("status 0", f"status {BROKEN_PIPE}"), proc.stderr
    assert proc.stderr.splitlines()[:-1] == [], proc.stderr  # no message, no traceback


def test_a_pipe_closed_before_the_output_is_a_quiet_exit_141():
    """The same with the reader gone before the first line: the write fails for certain."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [*COMMAND, "models"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=120, env=quiet_env()
        )
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (BROKEN_PIPE, "")


def test_output_to_a_file_is_unchanged(tmp_path):
    with open(tmp_path / "out.txt", "w") as out:
        proc = subprocess.run([*COMMAND, "models"], stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "" and "preact_resnet164" in (tmp_path / "out.txt").read_text()


@pytest.mark.parametrize(
    "argv, suggestion",
    [
        (["tran"], "did you mean 'train'?"),
        (["models", "--family", "cifr"], "did you mean 'cifar'?"),
        (["reproduce", "--dataset", "cifar", "table1"], "did you mean 'cifar10'?"),
        (["train", "--model", "resnet20", "--lr-milstones", "3"], "did you mean '--lr-milestones'"),
        (["train", "--model", "preact_resnet16"], "did you mean 'preact_resnet164'"),
        (["reproduce", "table3", "--rows", "cifar10_preact_resnet1O01"], "did you mean 'cifar10_preact_resnet1001'"),
        (["export", "--weights", "x", "--format", "onxx"], "did you mean 'onnx'?"),
    ],
)
def test_unknown_names_on_the_command_line_get_a_suggestion(capsys, argv, suggestion):
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and suggestion in err, err
