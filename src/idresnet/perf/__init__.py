"""Performance tools: activation checkpointing, FLOP counting, memory measurement, benchmarks."""

from idresnet.perf.checkpointing import (CHECKPOINT_MODES, checkpoint_modules, checkpoint_stages,
                                         frozen_bn_statistics, parse_checkpoint_mode, segment_bounds)
from idresnet.perf.compiling import compile_units

__all__ = [
    "CHECKPOINT_MODES",
    "checkpoint_modules",
    "checkpoint_stages",
    "compile_units",
    "frozen_bn_statistics",
    "parse_checkpoint_mode",
    "segment_bounds",
]
