"""The pieces a run is built from: device, precision, memory format, seeds, signals.

Defaults (measured: docs/performance.md, "Recommended defaults"): on CUDA, bf16 autocast,
channels_last and ``cudnn.benchmark``; on the CPU, channels_last too (faster for these
networks with oneDNN) and float32.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading

import torch

from idresnet.errors import ConfigError
from idresnet.networks.size import footprint, human_bytes, physical_memory
from idresnet.seeding import RANK, int_seed
from idresnet.signals import worker_signals
from idresnet.training import distributed

AUTO = "auto"  # a setting the run resolves for its device (device, amp, channels_last, threads, ...)
# The device settings, the one syntax of `idresnet train --device`, `eval`, `predict` and `bench`
DEVICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

# channels_last on the CPU: faster in the measurements of docs/performance.md ("CPU results")
CPU_CHANNELS_LAST = True


def is_device(spec) -> bool:
    """Whether ``spec`` is a device setting (:data:`DEVICES`); not whether it is present."""
    return isinstance(spec, str) and _DEVICE.fullmatch(spec) is not None


def device_type(spec: str) -> str:
    """'cuda', 'cpu' or 'mps' for a device setting, checking that it is there."""
    if not is_device(spec):
        raise ConfigError(f"invalid device {spec!r}: must be {DEVICES}")
    kind = spec.split(":")[0]
    if kind == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for but torch sees no CUDA device; valid here: auto, cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {spec!r} asked for but MPS is not available; valid here: auto, cpu")
    return kind


def resolve_device(spec: str, dist: distributed.DistInfo) -> torch.device:
    kind = device_type(spec)
    if kind == "cuda":
        if dist.active:
            return torch.device("cuda", dist.local_rank)
        index = int(spec.split(":")[1]) if ":" in spec else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return torch.device(kind)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"cpu ({cpu_model()}, {cpu_kernels()}, {torch.get_num_threads()} threads)"
    return device.type


def cpu_kernels() -> str:
    """The vector instructions torch's CPU kernels use here (``AVX2``, ``AVX512``, ...),
    and oneDNN's cap when ``ONEDNN_MAX_CPU_ISA`` sets one: a CPU run is bit-identical
    only on the same kernels (docs/training.md)."""
    capability = torch.backends.cpu.get_cpu_capability()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{capability}, oneDNN up to {cap}" if cap else capability


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return model


def check_fits(cfg, dist: distributed.DistInfo) -> None:
    """A one-line ConfigError, before any data is loaded or module built, when a training
    step of ``cfg``'s network at its batch size cannot fit this machine's (or GPU's)
    memory by the estimate of :mod:`idresnet.networks.size`."""
    kind = device_type(cfg.device)
    total: int | None
    if kind == "cuda":
        index = dist.local_rank if dist.active else (int(cfg.device.split(":")[1]) if ":" in cfg.device else 0)
        total, where, share = torch.cuda.get_device_properties(index).total_memory, "the GPU has", 1
    elif kind == "cpu":
        total, where = physical_memory(), "this machine has"
        share = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # processes sharing it
    else:
        return
    if not total:
        return
    spec = cfg.model_spec
    image = cfg.train_crop if cfg.dataset == "imagenet" else (None if cfg.dataset == "folder" else 32)
    need = footprint(
        spec.family,
        spec.depth,
        spec.unit.block,
        spec.width,
        max(1, cfg.batch_size // dist.world_size),
        image,
        checkpointing=cfg.activation_checkpointing != "none",
        shortcut=spec.unit.shortcut,
        stages=list(spec.stages),
    )
    if need["bytes"] * share > total:
        per = f" per process ({share} here)" if share > 1 else ""
        raise ConfigError(
            f"{cfg.model} {cfg.model_kwargs or ''} needs about {human_bytes(need['bytes'])}{per} for a "
            f"training step at batch {max(1, cfg.batch_size // dist.world_size)} ({need['params']:,} "
            f"parameters); {where} {human_bytes(total)}: use a smaller depth, width or batch_size, "
            "or activation_checkpointing".replace("  ", " ")
        )


def resolve_amp(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for float32."""
    if setting == "off" or (setting == AUTO and device.type != "cuda"):
        return None
    return torch.bfloat16


# oneDNN caps (ONEDNN_MAX_CPU_ISA) below AVX-512, where torch's bf16 check starts
_CAPS_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI"}


def cpu_native_bf16() -> bool:
    """Whether torch counts this CPU as bf16-capable for oneDNN (AVX-512 or newer: bf16
    instructions, or AVX-512 emulating them) and ``ONEDNN_MAX_CPU_ISA`` does not cap it
    to AVX2 or below. Without it bf16 is emulated, far slower than fp32
    (benchmarks/results/cpu-110-avx2-t2.md)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _CAPS_WITHOUT_BF16:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_warning(dtype: torch.dtype | None, device: torch.device) -> str | None:
    """A one-line warning when the chosen precision is a known slowdown here, else None."""
    if dtype is torch.bfloat16 and device.type == "cpu" and not cpu_native_bf16():
        return (
            f"amp bf16 on a CPU without native bf16 ({cpu_kernels()}): bf16 is emulated here, "
            "far slower than float32 (docs/performance.md); amp off is faster"
        )
    return None


def resolve_channels_last(setting, device: torch.device) -> bool:
    if setting == AUTO:
        return True if device.type == "cuda" else CPU_CHANNELS_LAST
    return bool(setting)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def rank_seed(seed: int, rank: int, iteration: int = 0) -> int:
    """A seed for rank ``rank``'s own random draws (dropout), distinct per rank."""
    return int_seed(seed, RANK, rank, iteration)


class StopSignals:
    """SIGINT and SIGTERM end a run cleanly.

    Before :meth:`arm` (data loading, model building: nothing to save yet) a signal
    raises KeyboardInterrupt at once, so the process ends promptly. Once armed (the
    training loop), the first signal only asks the loop to stop (:attr:`requested`): it
    checkpoints at the end of the current iteration, or abandons an evaluation at its next
    batch, and returns 'interrupted'; a second Ctrl-C raises KeyboardInterrupt at once,
    except within :meth:`deferred` (a checkpoint or the final weights being written),
    where it waits for the block's end. Handlers are installed only in the main thread
    and restored on exit. Processes forked meanwhile (decode pools, DataLoader workers)
    drop these handlers for :func:`idresnet.signals.worker_signals` (SIGINT ignored; a
    streamed dataset's DataLoader workers then ignore SIGTERM too, :mod:`idresnet.data.stream`).
    """

    def __init__(self):
        self.requested = False
        self.armed = False
        self._previous = {}
        self._deferring = 0
        self._abort_pending = False

    def arm(self) -> None:
        """From now on a first signal is a request to stop after the current iteration."""
        self.armed = True

    @contextlib.contextmanager
    def deferred(self):
        """The block runs to its end: a signal that would abort (KeyboardInterrupt) is
        raised when it is done, so a file being written is whole, and what the run
        records about it (status.json) is written with it."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            abort = self._abort_pending and not self._deferring
            if abort:
                self._abort_pending = False
        if abort:
            raise KeyboardInterrupt

    def _handle(self, signum, frame):
        if not self.armed or (self.requested and signum == signal.SIGINT):
            if self._deferring:
                self._abort_pending = True
                return
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
            _ACTIVE.append(self)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        return False


_ACTIVE: list = []  # StopSignals in force in this process


def _after_fork_in_child() -> None:
    if _ACTIVE:  # a worker forked by a run: never inherit the run's deferred handlers
        _ACTIVE.clear()
        try:
            worker_signals()
        except ValueError:  # not the main thread of the child: nothing to reset
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
