"""Module-by-module matching of foreign weights onto an idresnet network.

Both sides are reduced to the same form: the network's weight layers (convolution,
BatchNorm, linear) in forward order, each with its tensors. The converters choose the
network (name and layout options) from the source; :func:`assign` then walks the two
lists side by side and refuses, in one line naming the first mismatch, a source whose
layers differ in number, kind or shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from idresnet.errors import UsageError

BN_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class Layer:
    """One weight layer: ``kind`` is conv, bn or linear; ``name`` says where it is."""

    kind: str
    name: str
    tensors: dict  # parameter name -> tensor (conv: weight; bn: BN_KEYS; linear: weight, bias)

    def describe(self) -> str:
        shape = tuple(self.tensors["weight"].shape) if "weight" in self.tensors else ()
        return f"{self.kind}{list(shape)}"


def model_layers(model: nn.Module) -> list[Layer]:
    """The network's weight layers in registration order (forward order for idresnet nets)."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.bias is not None:
                raise UsageError(f"{name}: convolutions with a bias are not convertible")
            out.append(Layer("conv", name, {"weight": m.weight}))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(Layer("bn", name, {k: getattr(m, k) for k in BN_KEYS}))
        elif isinstance(m, nn.Linear):
            out.append(Layer("linear", name, {"weight": m.weight, "bias": m.bias}))
        elif isinstance(m, (nn.Conv1d, nn.Conv3d, nn.BatchNorm1d)):
            raise UsageError(f"{name}: {type(m).__name__} is not convertible")
    return out


def state_dict_layers(state: dict, where: str) -> list[Layer]:
    """A PyTorch state dict's weight layers in key order (modules are saved in order)."""
    groups: dict[str, dict] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UsageError(f"{where} is not a state dict of tensors (entry {key!r})")
        prefix, _, param = key.rpartition(".")
        groups.setdefault(prefix, {})[param] = value
    out = []
    for prefix, tensors in groups.items():
        tensors.pop("num_batches_tracked", None)
        keys = set(tensors)
        if keys == set(BN_KEYS):
            kind = "bn"
        elif keys == {"weight"} and tensors["weight"].ndim == 4:
            kind = "conv"
        elif keys == {"weight", "bias"} and tensors["weight"].ndim == 2:
            kind = "linear"
        else:
            raise UsageError(
                f"{where}: module {prefix!r} holds {sorted(keys)}, not a convolution "
                "without bias, a BatchNorm or a linear layer"
            )
        out.append(Layer(kind, prefix, tensors))
    return out


def assign(target: nn.Module, target_name: str, source: list[Layer], where: str) -> dict:
    """The state dict of ``target`` filled from ``source`` layer by layer, after checking
    that every layer matches in kind and shape (a one-line UsageError names the first
    that does not)."""
    ours = model_layers(target)
    if len(ours) != len(source):
        extra = source[len(ours)].name if len(source) > len(ours) else ours[len(source)].name
        raise UsageError(
            f"{where} does not match {target_name}: {len(source)} weight layers, "
            f"{target_name} has {len(ours)} (first unmatched: {extra})"
        )
    for i, (mine, theirs) in enumerate(zip(ours, source)):
        same = mine.kind == theirs.kind and all(
            k in theirs.tensors and tuple(theirs.tensors[k].shape) == tuple(v.shape) for k, v in mine.tensors.items()
        )
        if not same:
            raise UsageError(
                f"{where} does not match {target_name}: layer {i + 1} ({theirs.name}) is "
                f"{theirs.describe()}, {target_name} has {mine.describe()} at {mine.name}"
            )
    state = {}
    for mine, theirs in zip(ours, source):
        for k in mine.tensors:
            state[f"{mine.name}.{k}"] = theirs.tensors[k].detach().to(torch.float32).contiguous()
        if mine.kind == "bn":
            state[f"{mine.name}.num_batches_tracked"] = torch.tensor(0)
    return state
