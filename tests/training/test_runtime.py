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


def test_bf16_is_flagged_where_the_cpu_emulates_it(monkeypatch):
    """--amp bf16 on a CPU without bf16 instructions is a 9x slowdown: the run says so."""
    from idresnet.training import runtime

    cpu = torch.device("cpu")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    message = runtime.amp_warning(torch.bfloat16, cpu)
    assert message and message.startswith("amp bf16 on a CPU without native bf16 (") and "amp off" in message
    assert runtime.amp_warning(None, cpu) is None  # float32: nothing to say
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert runtime.cpu_native_bf16() and runtime.amp_warning(torch.bfloat16, cpu) is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # a cap below bf16 disables it in oneDNN
    assert not runtime.cpu_native_bf16() and "oneDNN up to avx2" in runtime.amp_warning(torch.bfloat16, cpu)
    assert runtime.amp_warning(torch.bfloat16, torch.device("cuda")) is None
