"""benchmarks/conv_ceiling.py: the convolutions of a network timed alone. Checked on a tiny
batch: every convolution is counted once, and the ceiling is reported in the bench's FLOP
convention. Never how fast: no timing is asserted."""

from __future__ import annotations

import pytest
from benchscripts import load

from idresnet import create_model
from idresnet.perf.flops import count_macs


def test_every_convolution_of_the_network_is_counted_once():
    cc = load("conv_ceiling")
    shapes = cc.conv_shapes(create_model("preact_resnet110"), 2, 32)
    assert sum(shapes.values()) == 1 + 3 * 18 * 2  # the stem, two 3x3 per unit, 54 units (zero-pad shortcuts)
    firsts = [key for key in shapes if key[-1]]
    assert len(firsts) == 1 and firsts[0][0] == (2, 3, 32, 32) and shapes[firsts[0]] == 1
    assert shapes[((2, 16, 32, 32), 16, (3, 3), (1, 1), (1, 1), False)] == 36  # stage 1: 18 units, 2 each
    assert shapes[((2, 32, 16, 16), 32, (3, 3), (1, 1), (1, 1), False)] == 35  # stage 2: less its stride-2 conv


def test_the_ceiling_is_in_the_bench_convention(capsys):
    cc = load("conv_ceiling")
    result = cc.main(["--model", "preact_resnet20", "--batch-size", "2", "--repeats", "1"])
    assert result["img_per_s_ceiling"] == pytest.approx(2 / result["conv_seconds_per_step"])
    macs = count_macs(create_model("preact_resnet20"), (3, 32, 32))
    assert result["gflop_per_s_ceiling"] == pytest.approx(6 * macs * result["img_per_s_ceiling"] / 1e9)
    if result["onednn_gemm_gflop_per_s"]:
        assert result["onednn_fraction_ceiling"] == pytest.approx(
            result["gflop_per_s_ceiling"] / result["onednn_gemm_gflop_per_s"]
        )
    assert "| (2, 16, 32, 32) | 16 | (3, 3) | (1, 1) | " in capsys.readouterr().out
