"""``malloc``: freed memory kept in the process on the CPU (training/allocator.py).

The setting is process-wide and cannot be undone, so what applies it runs in a subprocess."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from safetensors.torch import load_file
from trainhelpers import TINY, tiny_args

from idresnet.errors import ConfigError
from idresnet.training import TrainConfig, allocator

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
glibc = pytest.mark.skipif(allocator.why_not() is not None, reason=f"malloc keep: {allocator.why_not()}")


def _python(code: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_system_and_other_devices_leave_malloc_alone():
    assert allocator.for_run("system", CPU) == (False, "system (malloc system)")
    kept, why = allocator.for_run("auto", CUDA)
    assert not kept and why.startswith("system (malloc auto on cuda")


def test_a_preloaded_allocator_is_left_alone(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    if allocator.why_not() is None:  # pragma: no cover - glibc with jemalloc preloaded is refused above
        pytest.fail("jemalloc in LD_PRELOAD was not noticed")
    kept, why = allocator.for_run("auto", CPU)
    assert not kept and "jemalloc is preloaded" in why
    with pytest.raises(ConfigError, match=r"^malloc keep: .*jemalloc.*; valid here: system$"):
        allocator.for_run("keep", CPU)


def test_bad_setting_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="malloc.*'sometimes'.*auto, keep, system"):
        TrainConfig(**{**TINY, "malloc": "sometimes", "out": str(tmp_path / "r")})


FAULTS = """
    import sys, torch
    from idresnet.training import allocator
    print(allocator.for_run(sys.argv[1], torch.device("cpu"))[0])  # then warm up: the heap settles
    for _ in range(5):  # blocks of 40 MB, above glibc's 32 MiB cap on its mmap threshold
        torch.ones(10_000_000)
    before = allocator.page_faults()
    for _ in range(20):
        torch.ones(10_000_000)
    print(allocator.page_faults() - before)
"""


@glibc
def test_keep_reuses_freed_blocks_without_page_faults():
    kept, keep_faults = _python(FAULTS, "keep").split()
    system, system_faults = _python(FAULTS, "system").split()
    assert (kept, system) == ("True", "False")
    # system: each 40 MB block is mapped anew and its ~9,800 pages faulted in; keep: reused
    # (the heap may still grow a few times as small blocks settle between the large ones:
    # up to 3 of 10 blocks were seen under load)
    assert int(system_faults) > 20 * 5000
    assert int(keep_faults) < int(system_faults) // 2


TRAIN = """
    import sys
    from idresnet.cli.main import main
    sys.exit(main(["train", *sys.argv[1:]]))
"""


@glibc
def test_a_run_is_bit_identical_either_way_and_records_its_setting(tmp_path):
    weights = {}
    for setting in ("keep", "system"):
        out = tmp_path / setting
        _python(TRAIN, *tiny_args(malloc=setting, out=str(out), threads=1, compile=False))
        info = yaml.safe_load((out / "config.yaml").read_text())["run_info"]
        assert info["malloc"] == setting and info["malloc_reason"].startswith(
            "keep freed" if setting == "keep" else "system"
        )
        status = json.loads((out / "status.json").read_text())
        assert status["status"] == "finished"
        weights[setting] = load_file(out / "weights.safetensors")
    assert weights["keep"].keys() == weights["system"].keys()
    for key, value in weights["keep"].items():
        assert torch.equal(value, weights["system"][key]), key
