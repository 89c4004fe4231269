"""Where a run stands (training/summary.py, ``idresnet runs``), from hand-made run folders."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

from idresnet.errors import UsageError
from idresnet.training.metrics import COLUMNS
from idresnet.training.rundir import lock_writer_alive
from idresnet.training.summary import find_runs, summarize


def fake_run(folder, status="running", iterations=1000, rows=5, lock=None):
    """Rows every 100 iterations, 10 s apart, a test error at every other row."""
    folder.mkdir(parents=True)
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for k in range(1, rows + 1):
            tested = {"test_loss": 1.0, "test_error": 50.0 - k} if k % 2 == 0 else {}
            writer.writerow({"iteration": 100 * k, "epoch": k / 4, "lr": 0.1, "train_loss": 1.0, "train_error": 40.0,
                             "images_per_s": 10.0, "wall_time_s": 10.0 * k, **tested})  # fmt: skip
    best = 50.0 - 2 * (rows // 2)
    final = best if status == "finished" else None
    record = {"status": status, "iteration": 100 * rows, "iterations": iterations, "best_test_error": best}
    (folder / "status.json").write_text(json.dumps({**record, "final_test_error": final}))
    if lock is not None:
        (folder / ".lock").write_text(lock)
    return folder


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_a_running_run_reports_its_latest_errors_and_the_time_left(tmp_path):
    s = summarize(fake_run(tmp_path / "r"))
    assert (s["status"], s["iteration"], s["iterations"], s["epoch"]) == ("running", 500, 1000, 1.25)
    assert (s["test_error"], s["test_error_at"], s["best_test_error"]) == (46.0, 400, 46.0)
    assert s["seconds_left"] == pytest.approx(500 * 0.1)  # 500 iterations at 10 s per 100
    assert s["final_test_error"] is None


def test_a_finished_run_has_no_time_left(tmp_path):
    s = summarize(fake_run(tmp_path / "r", status="finished", iterations=500))
    assert s["status"] == "finished" and s["final_test_error"] == 46.0 and s["seconds_left"] is None


def test_running_without_its_process_is_stopped(tmp_path):
    host = socket.gethostname()
    gone = fake_run(tmp_path / "gone", lock=f"pid {dead_pid()} on {host} since 2026-11-30T00:00:00+0000\n")
    alive = fake_run(tmp_path / "alive", lock=f"pid {os.getpid()} on {host} since 2026-11-30T00:00:00+0000\n")
    elsewhere = fake_run(tmp_path / "elsewhere", lock="pid 1 on another-host since 2026-11-30T00:00:00+0000\n")
    alive_or_not = [lock_writer_alive(r) for r in (gone, alive, elsewhere)]
    assert alive_or_not == [False, True, None]
    assert [summarize(r)["status"] for r in (gone, alive, elsewhere)] == ["stopped", "running", "running"]
    assert summarize(gone)["seconds_left"] == pytest.approx(50.0)  # resumable: still has time left


def test_an_interrupted_run_stands_where_its_status_says(tmp_path, monkeypatch):
    """Issue #23: a run stopped between metrics rows (rows every 4 iterations, stopped after
    iteration 5) was listed at its last row, 4, while status.json said 5."""
    from trainhelpers import TINY, interrupt_at

    from idresnet.training import TrainConfig, train

    interrupt_at(monkeypatch, 5)
    result = train(TrainConfig(**TINY, out=str(tmp_path / "r")))
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert result.status == "interrupted" and status["iteration"] == 5
    s = summarize(tmp_path / "r")
    assert (s["status"], s["iteration"], s["epoch"]) == ("interrupted", 5, status["epoch"])


def test_a_running_run_is_ahead_of_its_last_checkpoint(tmp_path):
    run = fake_run(tmp_path / "r", rows=5)  # rows up to 500
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "iteration": 300, "epoch": 0.75}))  # checkpoint at 300
    assert (summarize(run)["iteration"], summarize(run)["epoch"]) == (500, 1.25)


def test_runs_are_found_below_folders_but_not_inside_runs(tmp_path):
    a = fake_run(tmp_path / "table" / "row_a" / "run0")
    b = fake_run(tmp_path / "table" / "row_a" / "run1")
    (a / "checkpoints").mkdir()
    fake_run(a / "nested")  # inside a run folder: not a run of its own here
    single = fake_run(tmp_path / "single")
    (tmp_path / "empty").mkdir()
    assert find_runs([tmp_path / "table", single, tmp_path / "empty"]) == [single, a, b]  # sorted by path
    with pytest.raises(UsageError, match="no such folder"):
        find_runs([tmp_path / "missing"])


def test_runs_command_table_json_and_errors(tmp_path, capsys):
    from idresnet.cli.main import main

    fake_run(tmp_path / "t" / "a" / "run0")
    fake_run(tmp_path / "t" / "b" / "run0", status="finished", iterations=500)
    assert main(["runs", str(tmp_path / "t")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "status", "iteration"]
    assert lines[1].split()[:5] == ["a/run0", "running", "500/1000", "1.2", "46.00"] and lines[1].split()[-1] == "0:50"
    assert lines[2].split()[:3] == ["b/run0", "finished", "500/500"] and lines[2].split()[-1] == "-"
    assert main(["runs", str(tmp_path / "t"), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in records] == ["running", "finished"]
    assert main(["runs", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no such folder" in err
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 0 and "no runs in" in capsys.readouterr().out


def test_a_damaged_status_is_reported_not_fatal(tmp_path):
    run = fake_run(tmp_path / "r")
    (run / "status.json").write_text('{"status": "runn')  # torn
    s = summarize(run)
    assert s["status"] == "damaged" and s["iteration"] == 500 and s["test_error"] == 46.0


def test_damaged_metrics_rows_are_left_out(tmp_path):
    run = fake_run(tmp_path / "r")
    with open(run / "metrics.csv", "a") as f:
        f.write("600,x,0.1,1.0,40.0,,,10.0,oops\n")  # a row whose numbers are not numbers
    assert summarize(run)["iteration"] == 500
    (run / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage")  # not even text
    s = summarize(run)
    assert s["status"] == "running" and s["iteration"] == 500 and s["test_error"] is None  # from status.json
