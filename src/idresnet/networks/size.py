"""What a network costs before it is built: parameters and training-step memory.

An estimate from the network's description alone (no module is created), so an absurd
depth, width or batch is refused in one line before minutes of building or an
out-of-memory kill. Activations kept for the backward pass are counted per residual
unit as ``k * C * H * W`` values per image (``k``: :data:`KEPT_PER_UNIT`, by block, plus
:data:`KEPT_BY_SHORTCUT`), ``k`` calibrated on the CPU with
:class:`idresnet.perf.memory.TensorMemoryTracker`; tests/networks/test_size.py holds the
estimate within [0.6, 1.6] of the measured peak and the parameter count within 10%.
"""

from __future__ import annotations

import os

from idresnet.networks.cifar import CIFAR_STEM_KERNEL, cifar_widths, units_per_stage
from idresnet.networks.imagenet import IMAGENET_STAGES, IMAGENET_STEM_KERNEL, IMAGENET_STEM_REDUCTION, imagenet_widths
from idresnet.units import BLOCKS
from idresnet.units.residual_unit import branch_widths

# activations kept per unit, in units of the unit's output C*H*W (see the docstring), and
# the extra a shortcut keeps (a gate's conv output, sigmoid and products; a 1x1 conv's output)
KEPT_PER_UNIT = {"basic": 4.0, "bottleneck": 3.0, "single": 2.5}
KEPT_BY_SHORTCUT = {"exclusive_gate": 3.5, "shortcut_gate": 3.5, "conv1x1": 1.0, "dropout": 1.0}
# share of those kept with activation checkpointing: an upper bound for every mode
# (preact ResNet-1001: benchmarks/results/cpu-ckpt-1001.md)
CHECKPOINTED_SHARE = 0.35
# bytes per parameter in training: fp32 weight, gradient, momentum, and a spare copy
BYTES_PER_PARAM = 16


def _unit_params(block: str, c_in: int, c_out: int) -> float:
    widths = branch_widths(block, c_in, c_out)  # [in, ..., out]
    return sum(k * k * a * b for k, a, b in zip(BLOCKS[block], widths, widths[1:]))


def footprint(
    family: str,
    depth: int,
    block: str,
    width: float = 1.0,
    batch_size: int = 1,
    image_size: int | None = None,
    checkpointing: bool = False,
    shortcut: str = "identity",
    num_classes: int | None = None,
    stages: list[int] | None = None,
) -> dict:
    """``{"params", "activation_bytes", "bytes"}`` of a training step (fp32).

    ``image_size`` None counts parameters only (activations 0). ``stages``: the units per
    stage where they are known already (a resolved :class:`~idresnet.networks.registry.ModelSpec`);
    otherwise they follow from ``depth``.
    """
    if family == "cifar":
        stages = stages or [units_per_stage(depth, block)] * 3
        c_prev, widths = cifar_widths(block, width)
        scale, stem = 1, CIFAR_STEM_KERNEL**2 * 3 * c_prev
    else:
        stages = stages or list(IMAGENET_STAGES[depth][1])
        c_prev, widths = imagenet_widths(block, width)
        scale, stem = IMAGENET_STEM_REDUCTION, IMAGENET_STEM_KERNEL**2 * 3 * c_prev
    classes = num_classes or (10 if family == "cifar" else 1000)
    params, kept = float(stem + widths[-1] * classes), 0.0
    per_unit = KEPT_PER_UNIT[block] + KEPT_BY_SHORTCUT.get(shortcut, 0.0)
    for s, (n, c) in enumerate(zip(stages, widths)):
        side = (image_size or 0) / (scale * 2**s)
        params += _unit_params(block, c_prev, c) + (n - 1) * _unit_params(block, c, c)
        if c_prev != c and (family == "imagenet" or block == "bottleneck"):
            params += c_prev * c  # the projection shortcut
        kept += n * per_unit * c * side * side
        c_prev = c
    if checkpointing:
        kept *= CHECKPOINTED_SHARE
    activation = 4.0 * batch_size * kept
    return {"params": int(params), "activation_bytes": activation, "bytes": activation + BYTES_PER_PARAM * params}


def physical_memory() -> int | None:
    """Bytes of memory of this machine, or None where it cannot be told."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"
