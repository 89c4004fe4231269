"""Execution modes of a training step, and the step itself for each mode.

A mode is a ``+``-joined set of options (order does not matter):

=====================  ===================================================================
option                 meaning
=====================  ===================================================================
``eager``              plain eager float32, NCHW: the baseline (no other option)
``channels_last``      weights and inputs in channels_last (NHWC) memory format
``bf16``               ``torch.autocast`` to bfloat16 (CUDA; also CPU where it has bf16)
``compile``            ``torch.compile(model)`` (default mode)
``compile=MODE``       ``torch.compile(model, mode=MODE)``, e.g. ``max-autotune-no-cudagraphs``
``compile=units``      every residual unit compiled on its own (``unit.compile()``): units of
                       the same shape share one compiled graph, so a 1001-layer net compiles
                       about 6 graphs instead of one huge one (see idresnet.networks.compiling)
``cudagraphs``         the whole step (forward, backward, SGD) captured as one CUDA graph
``ckpt=unit``          activation checkpointing per unit (also ``ckpt=segment:K``)
``sgd=IMPL``           torch.optim.SGD's code path: ``foreach`` or ``fused`` (default:
                       torch's own choice, as the engine's: its loop on the CPU)
=====================  ===================================================================

Example: ``bf16+channels_last+cudagraphs``. Every step is the training engine's
(:func:`idresnet.training.step.sgd_step`: forward, cross-entropy, backward, the paper's SGD).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from idresnet.errors import UsageError, choices_error
from idresnet.networks.checkpointing import canonical_mode
from idresnet.networks.compiling import compile_units
from idresnet.training.allocator import page_faults
from idresnet.training.step import LR, SGD_IMPLEMENTATIONS, sgd, sgd_step

OPTIONS = (
    "eager",
    "channels_last",
    "bf16",
    "compile",
    "compile=MODE",
    "cudagraphs",
    "ckpt=unit",
    "ckpt=segment:K",
    "sgd=foreach",
    "sgd=fused",
)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "units")
_ALIASES = {"cl": "channels_last", "nhwc": "channels_last", "fp32": "eager", "graphs": "cudagraphs"}


@dataclass(frozen=True)
class Mode:
    channels_last: bool = False
    bf16: bool = False
    compile: str | None = None  # None, or a torch.compile mode
    cudagraphs: bool = False
    checkpoint: str = "none"
    sgd: str | None = None  # None: torch's own choice, as the engine's

    @property
    def is_baseline(self) -> bool:
        return self == Mode()

    @property
    def name(self) -> str:
        parts = []
        if self.checkpoint != "none":
            parts.append(f"ckpt={self.checkpoint}")
        if self.bf16:
            parts.append("bf16")
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("compile" if self.compile == "default" else f"compile={self.compile}")
        if self.cudagraphs:
            parts.append("cudagraphs")
        if self.sgd is not None:
            parts.append(f"sgd={self.sgd}")
        return "+".join(parts) or "eager"

    def check(self, device: torch.device) -> str | None:
        """Why this mode cannot run on ``device`` (None if it can)."""
        if self.cudagraphs and device.type != "cuda":
            return "CUDA graphs need a CUDA device"
        if self.cudagraphs and self.compile and self.compile != "units":
            return "cudagraphs combine with compile=units only (whole-model: use compile=reduce-overhead)"
        if self.checkpoint != "none" and self.cudagraphs:
            return "activation checkpointing is not combined with CUDA graphs here"
        return None


def parse_mode(text: str) -> Mode:
    """A mode from its ``+``-joined options; bad options raise a one-line UsageError."""
    opts = dict(channels_last=False, bf16=False, compile=None, cudagraphs=False, checkpoint="none", sgd=None)
    tokens = [t.strip() for t in str(text).split("+")]
    if not text or not all(tokens):
        raise UsageError(f"invalid mode {text!r}; a mode is options joined by '+': {', '.join(OPTIONS)}")
    for token in tokens:
        key, _, value = token.partition("=")
        key = _ALIASES.get(key.lower(), key.lower())
        if key == "eager" and not value:
            continue
        if key in ("channels_last", "bf16", "cudagraphs") and not value:
            opts[key] = True
        elif key == "compile":
            value = value or "default"
            if value not in COMPILE_MODES:
                raise choices_error("compile mode", value, COMPILE_MODES, where=f" in mode {text!r}")
            opts["compile"] = value
        elif key == "ckpt" and value:
            opts["checkpoint"] = canonical_mode(value)
        elif key == "sgd" and value:
            if value not in SGD_IMPLEMENTATIONS:
                raise choices_error("SGD implementation", value, SGD_IMPLEMENTATIONS, where=f" in mode {text!r}")
            opts["sgd"] = value
        else:
            raise choices_error("mode option", token, OPTIONS, where=f" in {text!r}")
    return Mode(**opts)


def parse_modes(text: str) -> list[Mode]:
    modes = [parse_mode(t) for t in str(text).split(",") if t.strip()]
    if not modes:
        raise UsageError("no mode given; e.g. --modes eager,channels_last")
    return modes


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TrainStep:
    """One model in one mode: ``setup()`` (compile, capture), then ``run()`` per step.

    The model is built from the same seed for every mode, so all modes start from the
    same weights; the batch is fixed (synthetic), so only the execution differs.
    """

    def __init__(
        self,
        model_fn,
        mode: Mode,
        x: torch.Tensor,
        y: torch.Tensor,
        device: torch.device,
        lr: float = LR,
        seed: int = 0,
    ):
        self.mode, self.device = mode, device
        fmt = torch.channels_last if mode.channels_last else torch.contiguous_format
        torch.manual_seed(seed)
        model = model_fn()
        if mode.checkpoint != "none":
            if not hasattr(model, "set_checkpointing"):
                raise UsageError("activation checkpointing needs an idresnet ResNet")
            model.set_checkpointing(mode.checkpoint)
        self.model = model.to(device, memory_format=fmt).train()
        self.x = x.to(device).contiguous(memory_format=fmt)
        self.y = y.to(device)
        self.net = self.model
        if mode.compile == "units":
            compile_units(self.model)
        elif mode.compile:
            self.net = torch.compile(self.model, **({} if mode.compile == "default" else {"mode": mode.compile}))
        self.opt = sgd(self.model.parameters(), lr, implementation=mode.sgd)
        self.graph = None
        self.setup_s = None
        self._loss = None

    def _autocast(self):
        # CUDA graphs: no autocast weight cache (cached casts would be freed after capture)
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.mode.bf16, cache_enabled=not self.mode.cudagraphs
        )

    def _eager_step(self, mark=None) -> torch.Tensor:
        after_forward = None if mark is None else lambda: mark("forward")
        loss, _ = sgd_step(self.net, self.opt, self.x, self.y, self._autocast(), after_forward)
        self._loss = loss.detach()
        return loss

    def setup(self, warmup: int = 1) -> float:
        """Warm-up steps (compilation, cuDNN autotuning, CUDA graph capture); their seconds."""
        start = time.perf_counter()
        if self.mode.cudagraphs:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(max(warmup, 3)):  # momentum buffers and cuDNN plans exist before capture
                    self._eager_step()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            self.opt.zero_grad(set_to_none=True)  # the step's own zero_grad is then a no-op in the capture
            with torch.cuda.graph(self.graph):
                self.static_loss, _ = sgd_step(self.net, self.opt, self.x, self.y, self._autocast())
            self.graph.replay()
            self._loss = self.static_loss
        else:
            for _ in range(warmup):
                self._eager_step()
        sync(self.device)
        self.setup_s = time.perf_counter() - start
        return self.setup_s

    def run(self) -> None:
        """One training step (on the fixed batch)."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self._eager_step()

    def last_loss(self) -> float | None:
        """The loss of the last step (the modes of one model should agree closely)."""
        return None if self._loss is None else float(self._loss)

    def timed(self, steps: int) -> tuple[float, float, int | None]:
        """Wall and process-CPU seconds of ``steps`` steps, and the process's page faults in them."""
        sync(self.device)
        f0, w0, c0 = page_faults(), time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.run()
        sync(self.device)
        wall, cpu, f1 = time.perf_counter() - w0, time.process_time() - c0, page_faults()
        return wall, cpu, None if f0 is None or f1 is None else f1 - f0

    def memory(self) -> dict:
        """Peak memory of one step above what was allocated before it (see perf.memory)."""
        from idresnet.perf.memory import step_memory

        if self.graph is not None:
            return {
                "peak_bytes": None,
                "after_forward_bytes": None,
                "method": "not measured under CUDA graphs (memory is the graph's private pool)",
            }
        return step_memory(self._eager_step, self.device)

    def profile(self, steps: int = 1) -> dict:
        """Time shares of a step by layer type, median of ``steps`` profiled steps (see perf.profile)."""
        from idresnet.perf.profile import layer_time_shares

        return layer_time_shares(self.run, self.device, steps)
