"""Compiling a residual network unit by unit.

``torch.compile(model)`` traces the whole network into one graph: for the 110- to
1001-layer nets that graph has thousands of nodes and compiles for minutes. Compiling
each residual unit on its own (``nn.Module.compile``, in place: parameter names and
state_dict keys do not change) gives graphs of a dozen nodes; units with the same
structure and input shape share one compiled graph, so a CIFAR net compiles about 6
graphs whatever its depth (the first and the other units of each stage), in seconds
(the measured times: docs/performance.md, "What was tried"). Shapes are static
(``dynamic=False``): a unit of another shape gets its own graph instead of a slower
shape-generic one. Inductor still fuses
what eager mode cannot: BatchNorm statistics, normalisation and ReLU, and their
backward, into a few memory passes. The stem, pooling and classifier stay eager.
"""

from __future__ import annotations

import torch
from torch import nn

from idresnet.errors import UsageError


def compile_units(model: nn.Module, **compile_kwargs) -> nn.Module:
    """Compile every residual unit of an idresnet ResNet in place; returns the model.

    ``compile_kwargs`` go to ``torch.compile`` (e.g. ``mode="max-autotune-no-cudagraphs"``).
    Activation checkpointing (``set_checkpointing``) still applies: the checkpointed
    segments call the compiled units.
    """
    if not hasattr(model, "units"):
        raise UsageError("compile_units needs an idresnet ResNet (a model with .units())")
    raise_recompile_limit()
    compile_kwargs.setdefault("dynamic", False)
    for unit in model.units():
        unit.compile(**compile_kwargs)
    return model


def raise_recompile_limit(at_least: int = 64) -> None:
    """Dynamo keeps at most ``recompile_limit`` (default 8) compiled graphs per code object,
    and every unit of every network shares ``ResidualUnit.forward``: a process that
    compiles several networks or precisions (a benchmark) would pass the limit and
    silently run the remaining units eagerly."""
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, name, max(getattr(cfg, name), at_least))
