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

Whether the compiled step is faster depends on the CPU and the network: on an idle AMD Zen 4
at one thread it trained preact ResNet-20 and 110 1.10x and 1.05x as fast as eager
channels_last, but ResNet-164 0.98x (benchmarks/results/cpu-malloc-train-zen4-t1.md).
So a new run that ``auto`` would compile first measures (:func:`measure_speedup`): a few
training steps of a copy of its network, eager and compiled, timed in turn, and keeps
the compiled step only where it was at least :data:`MIN_SPEEDUP` times faster. The probe
costs the compilation (which the run then takes from inductor's cache) and a few steps,
little against a run of hours; it leaves the network, its optimizer state and the random
number generators as they were. Under several processes the rule stands unmeasured.
"""

from __future__ import annotations

import copy
import functools
import statistics
import time

import torch

from idresnet.errors import exception_line
from idresnet.training import runtime
from idresnet.training.step import sgd, sgd_step

MIN_ITERATIONS = 16_000  # a quarter of the paper's 64k CIFAR iterations
MIN_SPEEDUP = 1.03  # the compiled step must be this much faster than eager to be kept
PROBE_ROUNDS = 3  # timed steps of each step kind, in turn (after one untimed step of each)


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


def measure_speedup(
    module: torch.nn.Module,
    batch_shape: tuple[int, ...],
    num_classes: int,
    channels_last: bool,
    amp: torch.dtype | None,
    compile_fn=torch.compile,
) -> float:
    """Eager over compiled seconds per training step (above 1: compiled is faster) of a copy
    of ``module`` on a random batch of ``batch_shape`` (the run's per-process batch): one
    untimed step of each (the compilation), then :data:`PROBE_ROUNDS` rounds timing one
    step of each, the order swapped every round; the median of the rounds' ratios.
    ``module``, its buffers and the random number generators are left as they were."""
    device = next(module.parameters()).device
    with torch.random.fork_rng(devices=[]):  # the run's CPU generator stays where it was
        gen = torch.Generator().manual_seed(0)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(batch_shape, generator=gen).to(device, memory_format=fmt)
        y = torch.randint(0, num_classes, batch_shape[:1], generator=gen).to(device)
        steps = {}
        for kind in ("eager", "compiled"):
            net = copy.deepcopy(module).train()
            model = compile_fn(net) if kind == "compiled" else net
            steps[kind] = _timed_step(model, sgd(net.parameters()), x, y, runtime.autocast(device, amp), device)
            steps[kind]()  # untimed: the compilation, oneDNN's first kernels
        ratios = []
        for round_ in range(PROBE_ROUNDS):
            order = ("eager", "compiled") if round_ % 2 == 0 else ("compiled", "eager")
            took = {kind: steps[kind]() for kind in order}
            ratios.append(took["eager"] / took["compiled"])
    return statistics.median(ratios)


def _timed_step(model, optimizer, x, y, autocast, device):
    def step() -> float:
        start = time.perf_counter()
        sgd_step(model, optimizer, x, y, autocast)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return step


def by_measurement(compiled: bool, reason: str, speedup) -> tuple[bool, str]:
    """The ``auto`` choice ``(compiled, reason)`` kept where the compiled step measured at
    least :data:`MIN_SPEEDUP` times eager's speed (``speedup()``, called only when
    ``compiled``), else eager, with the measurement (or the probe's error) in the reason."""
    if not compiled:
        return compiled, reason
    try:
        gain = speedup()
    except Exception as exc:  # a compile that fails here would fail the run's first step
        return False, f"eager (compile auto: the timed probe failed: {exception_line(exc)}; --compile compiles)"
    measured = f"the compiled step measured {gain:.2f}x eager's speed here"
    if gain >= MIN_SPEEDUP:
        return True, f"{reason[:-1]}; {measured})"
    return False, f"eager (compile auto: {measured}, below {MIN_SPEEDUP}x; --compile compiles)"
