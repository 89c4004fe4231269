"""The oneDNN AVX2 fault guard (units/conv.py): strided 1x1 convolutions with < 8 input
channels compute in NCHW on the CPU, with the same numbers, and never crash."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import idresnet
from idresnet.units.conv import NCHWPointwiseConv2d, conv2d, needs_nchw


@pytest.mark.parametrize(
    "cin,k,stride,guarded",
    [
        (4, 1, 2, True),
        (7, 1, 2, True),
        (1, 1, 2, True),
        (8, 1, 2, False),
        (4, 1, 1, False),
        (4, 3, 2, False),
        (16, 1, 2, False),
    ],
)
def test_guard_applies_exactly_to_the_faulty_shape(cin, k, stride, guarded):
    assert needs_nchw(cin, k, stride) is guarded
    assert isinstance(conv2d(cin, 8, k, stride=stride), NCHWPointwiseConv2d) is guarded


def test_narrow_gate_network_has_guarded_convolutions():
    model = idresnet.create_model("resnet20", shortcut="exclusive_gate", width=0.25)
    guarded = [m for m in model.modules() if isinstance(m, NCHWPointwiseConv2d)]
    assert len(guarded) == 1  # the gate of the first down-sampling unit (4 -> 8 channels)
    assert guarded[0].in_channels == 4 and guarded[0].stride == (2, 2)


@pytest.mark.parametrize("channels_last", [False, True])
def test_guarded_conv_equals_plain_conv(channels_last):
    plain = nn.Conv2d(4, 8, 1, stride=2, bias=True)
    guarded = NCHWPointwiseConv2d(4, 8, 1, stride=2, bias=True)
    guarded.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, 9, 9)
    if channels_last:
        guarded = guarded.to(memory_format=torch.channels_last)
    xg = (x.to(memory_format=torch.channels_last) if channels_last else x.clone()).requires_grad_()
    xp = x.clone().requires_grad_()
    yg, yp = guarded(xg), plain(xp)
    assert yg.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(yg, yp)
    yg.square().sum().backward()
    yp.square().sum().backward()
    torch.testing.assert_close(xg.grad, xp.grad)
    torch.testing.assert_close(guarded.weight.grad, plain.weight.grad)


def test_guard_survives_torchscript():
    model = idresnet.create_model("resnet20", shortcut="conv1x1", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_narrow_networks_train_in_channels_last_under_avx2():
    """Fails (the child segfaults) without the guard on torch 2.13's oneDNN AVX2 kernels."""
    script = textwrap.dedent("""
        import torch, idresnet
        torch.set_num_threads(1)
        for shortcut in ("exclusive_gate", "shortcut_gate", "conv1x1"):
            m = idresnet.create_model("resnet20", shortcut=shortcut, width=0.25)
            m = m.to(memory_format=torch.channels_last)
            x = torch.randn(8, 3, 32, 32).to(memory_format=torch.channels_last)
            for _ in range(3):
                m(x).sum().backward()
        m = idresnet.create_model("preact_resnet164", width=0.0625, depth=11)
        m = m.to(memory_format=torch.channels_last)
        x = torch.randn(8, 3, 32, 32).to(memory_format=torch.channels_last)
        for _ in range(3):
            m(x).sum().backward()
        print("survived")
    """)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "survived" in proc.stdout, proc.stderr[-2000:]
