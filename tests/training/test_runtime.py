"""What a run records about its device (runtime.device_name)."""

import torch

from idresnet.training.runtime import device_name


def test_a_cpu_is_named_with_its_kernels_and_threads(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    capability = torch.backends.cpu.get_cpu_capability()
    name = device_name(torch.device("cpu"))
    assert name.startswith("cpu (") and f", {capability}, {torch.get_num_threads()} threads)" in name
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert f", {capability}, oneDNN up to AVX2, " in device_name(torch.device("cpu"))
