"""The throughput measurement behind the channels_last default runs (tiny settings)."""

from idresnet.training.speed import main, measure


def test_measure_reports_both_memory_formats():
    rates = measure("preact_resnet20", batch_size=4, steps=1, repeats=2, device="cpu", width=0.25)
    assert set(rates) == {(False, None), (True, None)}
    assert all(len(r) == 2 and min(r) > 0 for r in rates.values())


def test_command_prints_a_table(capsys):
    assert main(["--batch-size", "2", "--steps", "1", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "NCHW fp32" in out and "channels_last fp32" in out
