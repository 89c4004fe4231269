"""Progress reporting: plain lines at a steady pace when stderr is not a terminal."""

import io

from idresnet.progress import LineProgress, progress


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
