"""Whether ``compile: auto`` compiles the training step, and why (issue #27 item 2).

``torch.compile`` (inductor; forward and backward through AOTAutograd, so BatchNorm, ReLU
and the additions fuse in both directions) trained preact ResNet-20, 110 and 164 at
1.06x, 1.17x and 1.01x the speed of eager channels_last at one thread on an idle AMD Zen 5
(1.08x, 1.11x, 1.51x at two threads; benchmarks/results/cpu-compile-zen5-t*.md),
equal to eager within float rounding over 240 steps and
bit-identical on resume (tests/training/test_compiled_step.py). It costs a compile at the
start: 70 s, 160 s, 236 s for ResNet-20, 110, 164 with an empty inductor cache on a loaded
core, 12 min of CPU for ResNet-1001 (benchmarks/results/cpu-compile-*-zen5-cold.md).
So ``auto`` compiles on the CPU only for runs long enough for
that to be a small part (:data:`MIN_ITERATIONS`: a quarter of the paper's CIFAR schedule,
hours of one core for any of the paper's networks), and only where inductor works here (a
start-up probe compiles a one-line function: it needs a C++ compiler). Off the CPU,
``auto`` is eager: the compiled step has not been measured on a GPU by this project. A
resumed run keeps the mode it started with (``run_info.compile``), so it resumes
bit-identically.
"""

from __future__ import annotations

import functools

import torch

from idresnet.training import runtime

MIN_ITERATIONS = 16_000  # a quarter of the paper's 64k CIFAR iterations


@functools.lru_cache(maxsize=1)
def inductor_problem() -> str | None:
    """None where inductor compiles and runs a one-line function in this process (a few
    seconds with an empty cache), else what went wrong, in one line."""
    try:
        torch.compile(lambda t: torch.relu(t) + 1)(torch.zeros(4))
    except Exception as exc:  # a missing compiler raises from deep inside inductor
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
    return None


def choose(setting, device: torch.device, iterations: int) -> tuple[bool, str]:
    """Whether to compile for ``compile: setting`` on ``device`` for a run of
    ``iterations``, and why."""
    if setting is True or setting is False:
        return setting, "compiled (compile on)" if setting else "eager (compile off)"
    if device.type != "cpu":
        return False, f"eager (compile auto on {device.type}: not measured there; --compile compiles)"
    if iterations < MIN_ITERATIONS:
        return False, (
            f"eager (compile auto: {iterations} iterations, below the {MIN_ITERATIONS} that repay the compile; "
            "--compile compiles)"
        )
    if problem := inductor_problem():
        return False, f"eager (compile auto: inductor does not work here: {problem})"
    return True, f"compiled (compile auto: {iterations} iterations on the CPU)"


def for_run(setting, device: torch.device, iterations: int, started_with=None) -> tuple[bool, str]:
    """:func:`choose`, except that ``compile: auto`` in a resumed run keeps the mode the run
    started with (``run_info.compile``: true or false)."""
    if setting == runtime.AUTO and isinstance(started_with, bool):
        return started_with, ("compiled" if started_with else "eager") + " (compile auto: as the run started)"
    return choose(setting, device, iterations)
