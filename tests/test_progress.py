"""Progress reporting: plain lines at a steady pace when stderr is not a terminal."""

import io
import time

from idresnet.progress import LineProgress, progress, quiet, working


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_plain_lines_at_most_every_interval(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("idresnet.progress.time.monotonic", clock)
    out = io.StringIO()
    bar = progress(100, desc="decoding", unit="img", stream=out)
    assert isinstance(bar, LineProgress)  # a StringIO is not a terminal
    for _ in range(100):
        clock.t += 1.0  # one image a second: a line every 30 s
        bar.update()
    bar.set_postfix(loss="1.5")
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "decoding: 0/100 img (0:00)"
    assert len(lines) == 1 + 3 + 1  # start, at 30, 60, 90 s, end
    assert lines[1].startswith("decoding: 30/100 img (1 img/s, 0:30, eta 1:10)")
    assert lines[-1] == "decoding: 100/100 img (1 img/s, 1:40, eta 0:00) loss 1.5"


def test_short_silent_work_and_disabled_progress_print_nothing(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("idresnet.progress.time.monotonic", clock)
    out = io.StringIO()
    quiet = progress(10, desc="evaluating", stream=out, announce=False)
    for _ in range(10):
        clock.t += 0.1
        quiet.update()
    quiet.close()
    off = progress(10, enabled=False, stream=out)
    clock.t += 100
    off.update(10)
    off.close()
    assert out.getvalue() == ""


def test_long_unannounced_work_reports(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("idresnet.progress.time.monotonic", clock)
    out = io.StringIO()
    bar = progress(4, desc="evaluating", unit="batch", stream=out, announce=False)
    for _ in range(4):
        clock.t += 20.0
        bar.update()
    bar.close()
    assert out.getvalue().splitlines() == [
        "evaluating: 2/4 batch (0.05 batch/s, 0:40, eta 0:40)",
        "evaluating: 4/4 batch (0.05 batch/s, 1:20, eta 0:00)",
    ]


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "5")
    assert LineProgress(1, "", "it").interval == 5.0
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "soon")
    assert LineProgress(1, "", "it").interval == 30.0


def test_heartbeat_prints_when_the_stream_has_been_quiet_for_the_interval(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("idresnet.progress.time.monotonic", clock)
    out = io.StringIO()
    bar = LineProgress(10, "train", "it", stream=out, interval=30, heartbeat=False)
    clock.t += 29
    assert bar.beat() == 1.0 and len(out.getvalue().splitlines()) == 1  # not due yet: 1 s to go
    clock.t += 1  # one step has taken 30 s: the line comes without an update
    assert bar.beat() == 30.0
    assert out.getvalue().splitlines()[-1] == "train: 0/10 it (0:30)"
    other = LineProgress(4, "evaluating", "batch", stream=out, interval=30, announce=False, heartbeat=False)
    clock.t += 20
    assert other.beat() == 10.0  # the stream had a line 20 s ago, from the other reporter
    clock.t += 10
    other.beat()
    assert out.getvalue().splitlines()[-1] == "evaluating: 0/4 batch (0:30)"
    other.close()
    assert bar.beat() == 30.0 and len(out.getvalue().splitlines()) == 3  # that line counts for both
    bar.close()
    clock.t += 100
    assert bar.beat() == 30.0 and len(out.getvalue().splitlines()) == 3  # closed: silent


def test_the_heartbeat_thread_prints_while_nothing_advances():
    out = io.StringIO()
    bar = LineProgress(3, "step", "it", stream=out, interval=0.01, announce=False)
    deadline = time.monotonic() + 20
    while len(out.getvalue().splitlines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2 and all(line.startswith("step: 0/3 it (") for line in lines)
    time.sleep(0.05)
    assert out.getvalue().splitlines() == lines  # closed: the thread has stopped


def test_quiet_silences_every_reporter_and_working_reports_a_block(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("idresnet.progress.time.monotonic", clock)
    out = io.StringIO()
    with quiet():
        bar = progress(10, desc="decoding", stream=out)
        clock.t += 100
        bar.update(10)
        bar.close()
    assert out.getvalue() == ""
    with working("idresnet export", stream=out) as block:
        clock.t += 31
        block.beat()
    assert out.getvalue().splitlines() == ["idresnet export: working (0:31)"]


def test_only_the_innermost_reporter_beats(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("idresnet.progress.time.monotonic", clock)
    out = io.StringIO()
    run = LineProgress(10, "run", "it", stream=out, interval=30, heartbeat=False)
    evaluation = LineProgress(4, "evaluating", "batch", stream=out, interval=30, announce=False, heartbeat=False)
    clock.t += 31
    assert run.beat() == 1.0  # the evaluation is open: its line, not the run's
    evaluation.beat()
    evaluation.close()
    clock.t += 30
    run.beat()
    assert out.getvalue().splitlines() == ["run: 0/10 it (0:00)", "evaluating: 0/4 batch (0:31)", "run: 0/10 it (1:01)"]


def test_a_reporter_that_starts_late_in_a_silence_beats_at_the_silences_end(monkeypatch):
    clock, first_waits = Clock(), []
    monkeypatch.setattr("idresnet.progress.time.monotonic", clock)
    monkeypatch.setattr("idresnet.progress._heartbeat", lambda ref, stopped, wait: first_waits.append(wait))
    out = io.StringIO()
    run = LineProgress(10, "run", "it", stream=out, interval=30)
    clock.t += 20  # the run's last line was 20 s ago when its evaluation starts
    evaluation = LineProgress(4, "evaluating", "batch", stream=out, interval=30, announce=False)
    assert first_waits == [30.0, 10.0]  # the evaluation's heartbeat thread first wakes in 10 s, not 30
    clock.t += 10
    assert evaluation.beat() == 30.0  # 30 s of silence, though the evaluation is 10 s old
    assert out.getvalue().splitlines()[-1] == "evaluating: 0/4 batch (0:10)"
    evaluation.close()
    run.close()
