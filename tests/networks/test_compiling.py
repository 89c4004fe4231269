"""Per-unit compilation: same names, same results, still BN-safe with checkpointing."""

import copy

import pytest
import torch
import torch.nn.functional as F

from idresnet import create_model
from idresnet.errors import UsageError
from idresnet.networks.compiling import compile_units
from idresnet.perf.modes import parse_mode


def test_mode_name_and_checks():
    mode = parse_mode("compile=units+bf16+channels_last")
    assert mode.compile == "units" and mode.name == "bf16+channels_last+compile=units"
    cpu = torch.device("cpu")
    assert parse_mode("ckpt=segment:2+compile=units").check(cpu) is None
    assert parse_mode("ckpt=segment:2+compile").check(cpu) is None
    assert parse_mode("ckpt=segment:2+cudagraphs").check(cpu)


def test_needs_a_resnet():
    with pytest.raises(UsageError):
        compile_units(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_compiled_units_match_eager_and_keep_state_dict_keys():
    """About 30 s on a 2-core CPU (inductor compiles 6 small graphs)."""
    plain = create_model("preact_resnet164", depth=29, width=0.25)
    compiled = compile_units(copy.deepcopy(plain)).set_checkpointing("segment:2")
    assert list(plain.state_dict()) == list(compiled.state_dict())
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for model in (plain, compiled):
        F.cross_entropy(model(x), y).backward()
    for a, b in zip(plain.parameters(), compiled.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
    for a, b in zip(plain.buffers(), compiled.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # num_batches_tracked: 1 on both


@pytest.mark.slow
def test_whole_model_compile_with_checkpointing():
    """About 60 s. Under torch.compile a segment is a checkpointed graph region: the
    gradients equal those of the compiled model without checkpointing, and BN counts
    the batch once."""
    plain = create_model("preact_resnet20", width=0.25)
    ckpt = copy.deepcopy(plain).set_checkpointing("segment:2")
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for model in (plain, ckpt):
        torch.manual_seed(1)
        F.cross_entropy(torch.compile(model)(x), y).backward()
    for a, b in zip(plain.parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)
    assert {int(m.num_batches_tracked) for m in ckpt.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1}
