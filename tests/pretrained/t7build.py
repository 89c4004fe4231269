"""Test helpers: write Torch7 ``.t7`` files as ``torch.save`` does (the binary format that
torchfile reads), build fb.resnet.torch's module trees (models/resnet.lua, and
models/preresnet.lua at three points of its history), and run a module tree read back
by torchfile the way Torch7's nn would (the reference for converted weights)."""

from __future__ import annotations

import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5


class T7:
    """A Torch object: class name and its fields (an nn module) or a tensor."""

    def __init__(self, typename: str, fields: dict):
        self.typename, self.fields = typename, fields


class Writer:
    def __init__(self, f):
        self.f, self.next_index = f, 1

    def int(self, v):
        self.f.write(struct.pack("i", v))

    def long(self, v):
        self.f.write(struct.pack("q", v))

    def raw_string(self, s: bytes):
        self.int(len(s))
        self.f.write(s)

    def index(self):
        self.int(self.next_index)
        self.next_index += 1

    def obj(self, v):
        if v is None:
            self.int(TYPE_NIL)
        elif isinstance(v, bool):
            self.int(TYPE_BOOLEAN)
            self.int(int(v))
        elif isinstance(v, (int, float)):
            self.int(TYPE_NUMBER)
            self.f.write(struct.pack("d", float(v)))
        elif isinstance(v, str):
            self.int(TYPE_STRING)
            self.raw_string(v.encode())
        elif isinstance(v, (list, dict)):
            items = list(enumerate(v, 1)) if isinstance(v, list) else list(v.items())
            self.int(TYPE_TABLE)
            self.index()
            self.int(len(items))
            for k, x in items:
                self.obj(k)
                self.obj(x)
        elif isinstance(v, np.ndarray):
            self.tensor(v)
        elif isinstance(v, T7):
            self.torch_header(v.typename)
            self.obj(v.fields)
        else:
            raise TypeError(type(v))

    def torch_header(self, typename: str):
        self.int(TYPE_TORCH)
        self.index()
        self.raw_string(b"V 1")
        self.raw_string(typename.encode())

    def tensor(self, a: np.ndarray, storage_size: int | None = None):
        a = np.ascontiguousarray(a, dtype=np.float32)
        self.torch_header("torch.CudaTensor")  # fb.resnet.torch saved GPU models
        self.int(a.ndim)
        strides = [s // 4 for s in a.strides]
        for n in a.shape:
            self.long(n)
        for s in strides:
            self.long(s)
        self.long(1)
        self.torch_header("torch.CudaStorage")
        self.long(a.size if storage_size is None else storage_size)
        self.f.write(a.tobytes())


def save_t7(path, obj):
    with open(path, "wb") as f:
        Writer(f).obj(obj)


# ---------------------------------------------------------------- fb.resnet.torch's modules


class Lua:
    """Module constructors of Torch7 nn / cudnn with He-initialised random weights and
    random BN statistics (so that a wrong mapping shows in the logits)."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def conv(self, nin, nout, k, s=1, p=0):
        w = self.rng.standard_normal((nout, nin, k, k)) * math.sqrt(2 / (k * k * nout)) * 0.7
        return T7(
            "cudnn.SpatialConvolution",
            {
                "weight": w,
                "nInputPlane": nin,
                "nOutputPlane": nout,
                "kW": k,
                "kH": k,
                "dW": s,
                "dH": s,
                "padW": p,
                "padH": p,
            },
        )

    def bn(self, n):
        r = self.rng
        return T7(
            "nn.SpatialBatchNormalization",
            {
                "weight": r.uniform(0.5, 1.0, n),
                "bias": r.uniform(-0.2, 0.2, n),
                "eps": 1e-5,
                "running_mean": r.uniform(-0.2, 0.2, n),
                "running_var": r.uniform(0.5, 2.0, n),
                "momentum": 0.1,
                "affine": True,
                "train": False,
            },
        )

    def linear(self, nin, nout):
        return T7(
            "nn.Linear",
            {
                "weight": self.rng.standard_normal((nout, nin)) / math.sqrt(nin),
                "bias": self.rng.uniform(-0.1, 0.1, nout),
            },
        )

    @staticmethod
    def seq(*mods):
        return T7("nn.Sequential", {"modules": list(mods), "train": False})

    @staticmethod
    def m(typename, **fields):
        return T7(typename, {"train": False, **fields})

    def relu(self):
        return self.m("cudnn.ReLU", inplace=True)


STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def fb_resnet(
    depth: int,
    kind: str = "preresnet",
    version: str = "2016-04-30",
    width: int = 64,
    classes: int = 1000,
    seed: int = 0,
) -> T7:
    """fb.resnet.torch's ImageNet ResNet-``depth`` as its Lua code builds it, at ``width``
    stem channels (64 in the real files).

    ``kind``: ``resnet`` (models/resnet.lua; ``bn_after_add`` the ResNet-50 variant whose BN
    sits after the addition) or ``preresnet`` (models/preresnet.lua) at ``version``:
    ``2016-04-30`` (the current one: shared pre-activation at each stage's first unit,
    projection without BN), ``2016-04-11`` (every unit pre-activates its branch, the
    shortcut takes the raw sum, projection with BN) or ``2016-04-30-typo`` (the commit of
    that morning, where every unit of stage 1 skipped its pre-activation)."""
    L = Lua(seed)
    block, counts = STAGES[depth]
    state = {"ch": width}

    def shortcut(nin, nout, stride):
        if nin == nout:
            return L.m("nn.Identity")
        with_bn = kind == "resnet" or version == "2016-04-11"
        return L.seq(L.conv(nin, nout, 1, stride), *([L.bn(nout)] if with_bn else []))

    def unit(n, stride, utype):
        nin = state["ch"]
        nout = n * 4 if block == "bottleneck" else n
        state["ch"] = nout
        pre, s = [], []
        if kind == "preresnet":
            if utype == "both_preact":
                pre = [L.bn(nin), L.relu()]
            elif utype not in ("no_preact", "first"):
                s = [L.bn(nin), L.relu()]
        post_bn = kind == "resnet" and version != "bn_after_add"
        if block == "basic":
            s += [L.conv(nin, n, 3, stride, 1), L.bn(n), L.relu(), L.conv(n, n, 3, 1, 1)]
        else:
            s += [
                L.conv(nin, n, 1),
                L.bn(n),
                L.relu(),
                L.conv(n, n, 3, stride, 1),
                L.bn(n),
                L.relu(),
                L.conv(n, n * 4, 1),
            ]
        if post_bn:
            s.append(L.bn(nout))
        after = []
        if kind == "resnet":
            after = [L.bn(nout), L.relu()] if version == "bn_after_add" else [L.relu()]
        table = L.m("nn.ConcatTable", modules=[L.seq(*s), shortcut(nin, nout, stride)])
        return L.seq(*pre, table, L.m("nn.CAddTable", inplace=True), *after)

    def layer(n, count, stride, ltype=None):
        if kind == "preresnet" and version == "2016-04-30":
            types = ["no_preact" if ltype == "first" else "both_preact"] + [None] * (count - 1)
        elif kind == "preresnet" and version == "2016-04-30-typo":
            types = [ltype] * count  # 'first' reached every unit of stage 1
        else:
            types = [None] * count
        return L.seq(*[unit(n, stride if i == 0 else 1, t) for i, t in enumerate(types)])

    feats = width * 8 * (4 if block == "bottleneck" else 1)
    mods = [
        L.conv(3, width, 7, 2, 3),
        L.bn(width),
        L.relu(),
        L.m("nn.SpatialMaxPooling", kW=3, kH=3, dW=2, dH=2, padW=1, padH=1),
        layer(width, counts[0], 1, "first"),
        layer(width * 2, counts[1], 2),
        layer(width * 4, counts[2], 2),
        layer(width * 8, counts[3], 2),
    ]
    if kind == "preresnet":
        mods += [L.m("nn.Copy"), L.bn(feats), L.relu()]
    mods += [
        L.m("cudnn.SpatialAveragePooling", kW=7, kH=7, dW=1, dH=1),
        L.m("nn.View", size=feats),
        L.linear(feats, classes),
    ]
    return L.seq(*mods)


# ---------------------------------------------------------------- Torch7's forward pass


def _t(a):
    return torch.from_numpy(np.array(a, dtype=np.float32))


def forward(m, x):
    """Run a module tree as read by torchfile, in evaluation mode, as Torch7's nn would."""
    kind = m.torch_typename().decode().rsplit(".", 1)[-1]
    kids = list(m["modules"] or [])
    if kind == "Sequential":
        for k in kids:
            x = forward(k, x)
        return x
    if kind == "ConcatTable":
        return [forward(k, x) for k in kids]
    if kind == "CAddTable":
        return sum(x[1:], x[0])
    if kind == "Concat":
        return torch.cat([forward(k, x) for k in kids], dim=1)
    if kind in ("Identity", "Copy"):
        return x
    if kind == "MulConstant":
        return x * m["constant_scalar"]
    if kind == "ReLU":
        return F.relu(x)
    if kind == "SpatialConvolution":
        return F.conv2d(x, _t(m["weight"]), None, (m["dH"], m["dW"]), (m["padH"], m["padW"]))
    if kind == "SpatialBatchNormalization":
        return F.batch_norm(
            x, _t(m["running_mean"]), _t(m["running_var"]), _t(m["weight"]), _t(m["bias"]), False, 0.0, m["eps"]
        )
    if kind == "SpatialMaxPooling":
        return F.max_pool2d(x, (m["kH"], m["kW"]), (m["dH"], m["dW"]), (m["padH"], m["padW"]))
    if kind == "SpatialAveragePooling":
        return F.avg_pool2d(x, (m["kH"], m["kW"]), (m["dH"], m["dW"]))
    if kind == "View":
        return x.reshape(x.shape[0], -1)
    if kind == "Linear":
        return F.linear(x, _t(m["weight"]), _t(m["bias"]))
    raise NotImplementedError(kind)
