"""fb.resnet.torch ``.t7`` models (Torch7 serialisation), read with ``torchfile``.

torchfile parses the binary format without running code (Lua functions stay bytes);
on top of it this module refuses absurd sizes (file, strings, storages) and tensors
whose sizes and strides reach outside their storage, before any data is viewed.

The module tree of ``models/resnet.lua`` and ``models/preresnet.lua`` is walked unit by
unit. Each unit is ``Sequential[(BN, ReLU)?, ConcatTable[branch, shortcut], CAddTable,
(BN)?, (ReLU)?]``; what it holds gives the layout, which fb.resnet.torch changed over
time and which is therefore read, not assumed (docs/pretrained.md):

- a BN-ReLU before the ConcatTable: the pre-activation is shared by both paths
  (``stage_preact="shared"``, preresnet.lua since 30 April 2016); inside the branch:
  the shortcut takes the raw sum (``"residual"``, the April 2016 preresnet.lua);
- the first unit after the stem has no pre-activation (``first_preact="none"``);
- projection shortcuts with or without BN (``projection_bn``);
- after the addition: ReLU (original), BN-ReLU (BN after addition), nothing (pre-act);
- the strided convolution of the branch (``stride_index``), the width (stem channels / 64)
  and the depth (units per stage).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np
import torch

from idresnet.errors import UsageError
from idresnet.networks.imagenet import IMAGENET_STAGES
from idresnet.pretrained.match import Layer

MAX_FILE = 8 << 30  # 8 GiB: ResNet-200 is 0.26 GiB
MAX_STRING = 1 << 20
MAX_DIM = 8
_LOCK = threading.Lock()


def _load(path: Path):
    """The object tree of a .t7 file; any parse failure is a one-line UsageError."""
    try:
        import torchfile
    except ImportError:
        raise UsageError("reading .t7 files needs the torchfile package: pip install idresnet[torch7]") from None
    size = path.stat().st_size
    if size > MAX_FILE:
        raise UsageError(f"{path} is {size} bytes, more than the {MAX_FILE} a ResNet .t7 can be")

    class Reader(torchfile.T7Reader):
        def read_string(self, disable_utf8=False):
            n = self.read_int()
            if not 0 <= n <= MAX_STRING:
                raise torchfile.T7ReaderException(f"string of {n} bytes")
            s = self.f.read(n)
            return s if disable_utf8 or not self.utf8_decode_strings else s.decode("utf8")

    def tensor_reader(dtype):
        def read(reader, version):
            ndim = reader.read_int()
            if not 0 <= ndim <= MAX_DIM:
                raise torchfile.T7ReaderException(f"tensor of {ndim} dimensions")
            sizes, strides = reader.read_long_array(ndim), reader.read_long_array(ndim)
            offset = reader.read_long() - 1
            storage = reader.read_obj()
            if ndim == 0 or storage is None:
                return np.empty(0, dtype)
            if not isinstance(storage, np.ndarray) or min(sizes) < 0 or min(strides) < 0 or offset < 0:
                raise torchfile.T7ReaderException("tensor with negative sizes, strides or offset")
            if min(sizes) and offset + sum((n - 1) * s for n, s in zip(sizes, strides)) >= len(storage):
                raise torchfile.T7ReaderException(
                    f"tensor of size {sizes} reaches past its storage of {len(storage)} elements"
                )
            return np.lib.stride_tricks.as_strided(
                storage[offset:], shape=sizes, strides=[storage.dtype.itemsize * s for s in strides]
            )

        return read

    def storage_reader(dtype):
        def read(reader, version):
            n = reader.read_long()
            left = os.fstat(reader.f.fileno()).st_size - reader.f.tell()
            if not 0 <= n * np.dtype(dtype).itemsize <= left:
                raise torchfile.T7ReaderException(f"storage of {n} elements, the file has {left} bytes left")
            return np.fromfile(reader.f, dtype=dtype, count=n)

        return read

    kinds = {
        "Byte": np.uint8,
        "Char": np.int8,
        "Short": np.int16,
        "Int": np.int32,
        "Long": np.int64,
        "Float": np.float32,
        "Double": np.float64,
    }
    handlers = {}
    for kind, dtype in kinds.items():
        for cuda in ("", "Cuda"):
            t = "Cuda" if cuda and kind == "Float" else f"{cuda}{kind}"
            handlers[f"torch.{t}Tensor".encode()] = tensor_reader(dtype)
            handlers[f"torch.{t}Storage".encode()] = storage_reader(dtype)
    with _LOCK, _handlers(torchfile.type_handlers, handlers), open(path, "rb") as f:
        try:
            return Reader(f, use_list_heuristic=True, use_int_heuristic=True).read_obj()
        except Exception as exc:  # struct errors at a truncated end, bad type codes, recursion, ...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise UsageError(f"{path} is not a readable Torch7 file ({type(exc).__name__}: {reason})") from None


@contextlib.contextmanager
def _handlers(table: dict, replacements: dict):
    """torchfile's readers of tensors and storages swapped for the guarded ones, for one load."""
    saved = {k: table.get(k) for k in replacements}
    table.update(replacements)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                table.pop(k, None)
            else:
                table[k] = v


# ---------------------------------------------------------------- the module tree


def _kind(m) -> str:
    """``nn.SpatialConvolution`` -> ``SpatialConvolution`` (also cudnn., fbnn., ...)."""
    name = m.torch_typename() if hasattr(type(m), "torch_typename") else type(m).__name__
    name = name.decode() if isinstance(name, bytes) else str(name)
    return name.rsplit(".", 1)[-1]


def _attr(m, key):
    """A field of a Torch object (None when absent; a module without fields reads as a list)."""
    fields = getattr(m, "_obj", None)
    if not isinstance(fields, dict):
        return None
    return fields.get(key.encode(), fields.get(key))


def _children(m) -> list:
    mods = _attr(m, "modules")
    if mods is None:
        return []
    return list(mods.values()) if isinstance(mods, dict) else list(mods)


def _field(m, key, where):
    value = _attr(m, key)
    if value is None:
        raise UsageError(f"{where}: {_kind(m)} has no {key}")
    return value


def _tensor(value, where) -> torch.Tensor:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise UsageError(f"{where}: expected a float tensor, got {type(value).__name__}")
    return torch.from_numpy(np.array(value, dtype=np.float32))


CONV, BN, LINEAR = "SpatialConvolution", "SpatialBatchNormalization", "Linear"
IGNORED = {"ReLU", "SpatialMaxPooling", "SpatialAveragePooling", "View", "Copy", "Reshape", "Identity", "Dropout"}


def _layer(m, where: str) -> Layer:
    kind = _kind(m)
    if kind == CONV:
        w = _tensor(_field(m, "weight", where), where)
        n_out, n_in, kh, kw = (int(m[k] or 0) for k in ("nOutputPlane", "nInputPlane", "kH", "kW"))
        if w.numel() != n_out * n_in * kh * kw:
            raise UsageError(f"{where}: weight of {w.numel()} values for a {n_out}x{n_in}x{kh}x{kw} convolution")
        bias = _attr(m, "bias")
        if bias is not None and np.size(bias) and np.any(np.asarray(bias) != 0):
            raise UsageError(f"{where}: a convolution with a non-zero bias (ResNet convolutions have none)")
        return Layer("conv", where, {"weight": w.reshape(n_out, n_in, kh, kw)})
    if kind == BN:
        eps = float(_attr(m, "eps") if _attr(m, "eps") is not None else 1e-5)
        if abs(eps - 1e-5) > 1e-12:
            raise UsageError(f"{where}: BatchNorm eps {eps}, idresnet's BatchNorm uses 1e-05")
        if _attr(m, "running_var") is not None:
            var = _tensor(_attr(m, "running_var"), where)
        else:  # nn before 2016 kept 1/sqrt(var + eps)
            var = _tensor(_field(m, "running_std", where), where).pow(-2) - eps
        return Layer(
            "bn",
            where,
            {
                "weight": _tensor(_field(m, "weight", where), where),
                "bias": _tensor(_field(m, "bias", where), where),
                "running_mean": _tensor(_field(m, "running_mean", where), where),
                "running_var": var,
            },
        )
    if kind == LINEAR:
        return Layer(
            "linear",
            where,
            {"weight": _tensor(_field(m, "weight", where), where), "bias": _tensor(_field(m, "bias", where), where)},
        )
    raise AssertionError(kind)


def _leaves(m, where: str) -> list:
    """``(kind, module, where)`` of the leaves of a container (Sequential, ConcatTable), in order."""
    out = []
    for i, c in enumerate(_children(m)):
        w = f"{where}.{i + 1}"
        out += _leaves(c, w) if _children(c) else [(_kind(c), c, w)]
    return out


def _unit(m, where: str) -> dict:
    """One residual unit: its layout facts and its weight layers in forward order."""
    parts = _children(m)
    kinds = [_kind(c) for c in parts]
    if "ConcatTable" not in kinds or "CAddTable" not in kinds:
        raise UsageError(f"{where}: expected a residual unit (ConcatTable, CAddTable), found {kinds}")
    at = kinds.index("ConcatTable")
    before, after = kinds[:at], kinds[kinds.index("CAddTable") + 1 :]
    paths = _children(parts[at])
    if len(paths) != 2:
        raise UsageError(f"{where}: a ConcatTable of {len(paths)} paths, expected the branch and the shortcut")
    branch = _leaves(paths[0], f"{where}.branch")
    shortcut = (
        _leaves(paths[1], f"{where}.shortcut")
        if _children(paths[1])
        else [(_kind(paths[1]), paths[1], f"{where}.shortcut")]
    )
    bkinds = [k for k, _, _ in branch if k in (CONV, BN)]
    convs = [c for k, c, _ in branch if k == CONV]
    skinds = [k for k, _, _ in shortcut]
    if before not in ([], [BN, "ReLU"]) or after not in ([], ["ReLU"], [BN, "ReLU"]):
        raise UsageError(f"{where}: unexpected layers around the addition ({before} ... {after})")
    if any(k not in (CONV, BN) and k not in IGNORED for k, _, _ in branch):
        raise UsageError(f"{where}: unexpected layer in the residual branch: {[k for k, _, _ in branch]}")
    if skinds and skinds[0] == CONV:
        short = "projection_bn" if skinds == [CONV, BN] else "projection"
    elif "Concat" in skinds or "MulConstant" in skinds or skinds[:1] == ["SpatialAveragePooling"]:
        short = "zero_pad"
    elif skinds in (["Identity"], []):
        short = "identity"
    else:
        raise UsageError(f"{where}: unexpected shortcut {skinds}")
    if after == ["ReLU"]:
        placement = "original"
    elif after == [BN, "ReLU"]:
        placement = "bn_after_add"
    else:
        placement = "full_preact"
    preact = "shared" if before else ("residual" if bkinds[:1] == [BN] else "none")
    strides = [int(_attr(c, "dH") or 1) for c in convs]
    layers = [(k, c, w) for k, c, w in _leaves(m, where) if k in (CONV, BN, LINEAR)]
    return {
        "placement": placement,
        "preact": preact,
        "shortcut": short,
        "convs": len(convs),
        "stride_index": strides.index(2) if 2 in strides else None,
        "layers": [_layer(c, w) for _, c, w in layers],
        "where": where,
    }


def _top_modules(tree) -> list:
    """The network's top-level modules (a DataParallelTable wrapper is unwrapped)."""
    if _kind(tree) == "DataParallelTable":
        tree = _children(tree)[0]
    if _kind(tree) != "Sequential":
        raise UsageError(f"the file holds a {_kind(tree)}, not an nn.Sequential ResNet")
    return _children(tree)


def _the_same(values: set, what: str, where: str):
    if len(values) != 1:
        raise UsageError(f"{where}: units differ in {what} ({', '.join(sorted(map(str, values)))})")
    return next(iter(values))


def read(path: Path, arch: str | None = None) -> dict:
    """What :func:`idresnet.pretrained.convert` needs: model, options, dataset, layers."""
    top = _top_modules(_load(path))
    stem, stages, tail = [], [], []
    for i, m in enumerate(top):
        where = f"module {i + 1}"
        kind = _kind(m)
        if kind == "Sequential":
            if tail:
                raise UsageError(f"{where}: a stage after the classifier")
            stages.append([_unit(u, f"{where}.{j + 1}") for j, u in enumerate(_children(m))])
        elif kind in (CONV, BN, LINEAR):
            (tail if stages else stem).append(_layer(m, where))
        elif kind not in IGNORED:
            raise UsageError(f"{where}: unexpected {kind} in a ResNet")
    units = [u for s in stages for u in s]
    if not units or [layer.kind for layer in stem] != ["conv", "bn"] or not tail or tail[-1].kind != "linear":
        raise UsageError(
            f"{path} is not a ResNet of fb.resnet.torch (a 7x7 conv-BN stem, stages of "
            "residual units, a linear classifier)"
        )
    if tuple(stem[0].tensors["weight"].shape[2:]) != (7, 7):
        raise UsageError(
            f"{path}: the stem is a {tuple(stem[0].tensors['weight'].shape[2:])} convolution; "
            "only the ImageNet nets (7x7 stem) of fb.resnet.torch are supported"
        )
    layers = stem + [layer for u in units for layer in u["layers"]] + tail
    return {**_options(path, stages, stem, tail), "layers": layers}


def _options(path: Path, stages: list, stem: list, tail: list) -> dict:
    """The idresnet model and options that reproduce the file's layout."""
    units = [u for s in stages for u in s]
    where = str(path)
    placement = _the_same({u["placement"] for u in units}, "placement", where)
    block = {2: "basic", 3: "bottleneck"}.get(_the_same({u["convs"] for u in units}, "convolutions per unit", where))
    counts = tuple(len(s) for s in stages)
    depth = next((d for d, (b, c) in IMAGENET_STAGES.items() if (b, c) == (block, counts)), None)
    if depth is None:
        raise UsageError(
            f"{where}: {block} units {counts} per stage is not an ImageNet ResNet; valid: "
            + ", ".join(f"{d}: {b} {c}" for d, (b, c) in IMAGENET_STAGES.items())
        )
    width = stem[0].tensors["weight"].shape[0] / 64
    kwargs = {} if width == 1 else {"width": width}
    strided = {u["stride_index"] for u in units if u["stride_index"] is not None}
    stride_index = _the_same(strided, "the strided convolution", where)
    if block == "bottleneck" and stride_index != 1:
        kwargs["stride_index"] = stride_index
    projections = {u["shortcut"] for u in units if u["shortcut"] != "identity"}
    shortcut = _the_same(projections, "shortcut", where)
    if shortcut == "zero_pad":
        kwargs["downsample"] = "zero_pad"
    else:
        bn = shortcut == "projection_bn"
        if bn != (placement != "full_preact"):
            kwargs["projection_bn"] = bn
    if placement == "full_preact":
        later = {u["preact"] for s in stages for u in s[1:]}
        if later != {"residual"}:
            raise UsageError(f"{where}: units after the first of a stage must pre-activate their branch only")
        first, stage = units[0]["preact"], _the_same({s[0]["preact"] for s in stages[1:]}, "pre-activation", where)
        if first != "none":
            kwargs["first_preact"] = first
        if stage != "shared":
            kwargs["stage_preact"] = stage
        if [layer.kind for layer in tail] != ["bn", "linear"]:
            raise UsageError(f"{where}: a pre-activation net ends with BN-ReLU before the classifier")
        name = f"imagenet_preact_resnet{depth}"
    else:
        if [layer.kind for layer in tail] != ["linear"] or {u["preact"] for u in units} != {"none"}:
            raise UsageError(f"{where}: a post-activation net has no BN before its units or classifier")
        name = f"imagenet_resnet{depth}"
        if placement != "original":
            kwargs["placement"] = placement
    return {
        "model": name,
        "model_kwargs": kwargs,
        "dataset": "imagenet",
        "arch": f"fb.resnet.torch {name}",
        "mean": None,
        "std": None,
        "layout": {"placement": placement, "shortcut": shortcut, "first_preact": units[0]["preact"]},
    }
