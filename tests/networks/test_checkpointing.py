"""Activation checkpointing: same loss, gradients and BN statistics as the plain run."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from idresnet import create_model
from idresnet.errors import UsageError
from idresnet.networks.checkpointing import parse_checkpoint_mode, segment_bounds
from idresnet.perf.memory import TensorMemoryTracker, step_memory

MODES = ["unit", "segment:1", "segment:2"]


def small(name="preact_resnet164", **kw):
    """Tiny versions of the paper's nets: few units per stage, narrow."""
    depth = {"preact_resnet164": 29, "preact_resnet110": 20, "resnet110": 20}.get(name)
    opts = {"depth": depth} if depth else {}
    return create_model(name, **{"width": 0.25, **opts, **kw})


def train_steps(model, x, y, steps=1, seed=1, lr=0.1):
    """``steps`` SGD steps on one batch; returns the losses."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    torch.manual_seed(seed)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def one_step_grads(model, x, y, seed=1):
    torch.manual_seed(seed)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def batch(n=4, size=32):
    return torch.randn(n, 3, size, size), torch.randint(0, 10, (n,))


def assert_buffers_equal(a, b):
    for (name, u), (_, v) in zip(a.named_buffers(), b.named_buffers()):
        assert torch.equal(u, v), name


# ------------------------------------------------------------------ parsing


def test_parse_modes():
    assert parse_checkpoint_mode("none") == ("none", None)
    assert parse_checkpoint_mode(None) == ("none", None)
    assert parse_checkpoint_mode("unit") == ("unit", None)
    assert parse_checkpoint_mode("segment:4") == ("segment", 4)
    assert parse_checkpoint_mode(" Segment:12 ") == ("segment", 12)


@pytest.mark.parametrize("bad", ["segment", "segment:0", "segment:-1", "segment:x", "units", "", 3])
def test_bad_modes_are_one_line_usage_errors(bad):
    with pytest.raises(UsageError) as err:
        parse_checkpoint_mode(bad)
    assert "\n" not in str(err.value) and "segment:K" in str(err.value)
    with pytest.raises(UsageError):
        small().set_checkpointing(bad)


def test_segment_bounds_cover_every_unit_once():
    assert segment_bounds(5, "none") == []
    assert segment_bounds(3, "unit") == [(0, 1), (1, 2), (2, 3)]
    assert segment_bounds(111, "segment:4") == [(0, 28), (28, 56), (56, 84), (84, 111)]
    assert segment_bounds(3, "segment:8") == [(0, 1), (1, 2), (2, 3)]  # fewer units than segments
    for n in (1, 7, 36):
        for k in (1, 2, 5, 50):
            b = segment_bounds(n, f"segment:{k}")
            assert [i for s, e in b for i in range(s, e)] == list(range(n))
            assert max(e - s for s, e in b) - min(e - s for s, e in b) <= 1


def test_mode_is_an_attribute_and_chainable():
    model = small()
    assert model.checkpoint_mode == "none"
    assert model.set_checkpointing("segment:3") is model and model.checkpoint_mode == "segment:3"
    assert model.set_checkpointing("none").checkpoint_mode == "none"


# ------------------------------------------------------------------ correctness


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["preact_resnet164", "preact_resnet110", "resnet110"])
def test_one_step_matches_plain_exactly(name, mode):
    """Loss, every gradient, running statistics and num_batches_tracked (updated once)."""
    plain = small(name)
    ckpt = copy.deepcopy(plain).set_checkpointing(mode)
    x, y = batch()
    loss_a, grads_a = one_step_grads(plain, x, y)
    loss_b, grads_b = one_step_grads(ckpt, x, y)
    assert torch.equal(loss_a, loss_b)
    for ga, gb in zip(grads_a, grads_b):
        assert torch.equal(ga, gb)
    assert_buffers_equal(plain, ckpt)
    tracked = [m.num_batches_tracked for m in ckpt.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert tracked and all(int(t) == 1 for t in tracked)


def test_running_statistics_after_steps_equal_plain():
    """Several SGD steps on changing batches: the same loss curve and the same BN buffers."""
    plain = small()
    ckpt = copy.deepcopy(plain).set_checkpointing("segment:2")
    xs = [batch(4) for _ in range(3)]
    curves = []
    for model in (plain, ckpt):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        losses = []
        for x, y in xs:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves.append(losses)
    assert curves[0] == curves[1]
    assert_buffers_equal(plain, ckpt)
    for a, b in zip(plain.parameters(), ckpt.parameters()):
        assert torch.equal(a, b)
    assert all(int(m.num_batches_tracked) == 3 for m in ckpt.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_naive_checkpointing_would_update_bn_twice():
    """The pitfall the BN guard prevents: plain torch.utils.checkpoint recomputes the
    BN layers in training mode and counts (and averages) the batch twice."""
    model = small("preact_resnet110")
    units = model.units()

    def forward(x):
        x = model.stem(x)
        for u in units:
            x = checkpoint(u, x, use_reentrant=False)
        return model.fc(model.pool(model.final_act(x)).flatten(1))

    x, y = batch()
    F.cross_entropy(forward(x), y).backward()
    bn = units[1].residual[0]
    assert int(bn.num_batches_tracked) == 2  # ours: 1 (test_one_step_matches_plain_exactly)


@pytest.mark.parametrize("mode", ["unit", "segment:2"])
def test_dropout_shortcut_mask_is_reproduced(mode):
    """The dropout shortcut draws a mask: recomputation must draw the same one."""
    plain = small("resnet110", shortcut="dropout")
    ckpt = copy.deepcopy(plain).set_checkpointing(mode)
    x, y = batch()
    torch.manual_seed(5)
    first = plain(x)
    torch.manual_seed(6)
    assert not torch.equal(first, plain(x))  # the mask is random: the test is not vacuous
    loss_a, grads_a = one_step_grads(plain, x, y, seed=7)
    loss_b, grads_b = one_step_grads(ckpt, x, y, seed=7)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_channels_last_and_imagenet_family():
    plain = create_model("imagenet_preact_resnet50", width=0.125, num_classes=10)
    plain = plain.to(memory_format=torch.channels_last)
    ckpt = copy.deepcopy(plain).set_checkpointing("segment:2")
    x, y = batch(2, 64)
    x = x.contiguous(memory_format=torch.channels_last)
    loss_a, grads_a = one_step_grads(plain, x, y)
    loss_b, grads_b = one_step_grads(ckpt, x, y)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert_buffers_equal(plain, ckpt)


def test_eval_and_no_grad_do_not_checkpoint_and_match():
    plain = small()
    ckpt = copy.deepcopy(plain).set_checkpointing("unit")
    x, _ = batch()
    with torch.no_grad():
        assert torch.equal(plain(x), ckpt(x))  # training mode, no graph: plain path
    plain.eval(), ckpt.eval()
    assert torch.equal(plain(x), ckpt(x))


def test_torchscript_still_works_with_checkpointing_set():
    model = small().set_checkpointing("unit").eval()
    x, _ = batch(2)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


# ------------------------------------------------------------------ memory


def test_tracker_counts_live_storages():
    tracker = TensorMemoryTracker()
    with tracker:
        a = torch.zeros(1024)  # 4 KiB
        b = torch.zeros(2048)  # 8 KiB
        view = b[:10]  # a view: no new storage
        b.add_(1)  # in place: no new storage
        del a
        c = torch.ones(512)  # 2 KiB
    assert tracker.peak == 4096 + 8192
    assert tracker.live == 8192 + 2048
    del b, view, c
    assert tracker.live == 0


def _memory(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(mark):
        loss = F.cross_entropy(model(x), y)
        mark("forward")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(lambda name: None)  # momentum buffers exist before measuring
    return step_memory(step, "cpu")


def test_checkpointing_cuts_activation_memory():
    """Kept activations after the forward pass: per unit about a third (a bottleneck
    unit keeps ~3 tensors of its width, checkpointed only its input); per segment less."""
    x, y = batch(8)
    plain = small("preact_resnet164", depth=56)  # 6 units per stage
    mem = {mode: _memory(copy.deepcopy(plain).set_checkpointing(mode), x, y) for mode in ("none", "unit", "segment:2")}
    fwd = {m: r["after_forward_bytes"] for m, r in mem.items()}
    peak = {m: r["peak_bytes"] for m, r in mem.items()}
    assert fwd["unit"] < 0.45 * fwd["none"]
    assert fwd["segment:2"] < fwd["unit"]
    assert peak["segment:2"] < 0.6 * peak["none"] and peak["unit"] < peak["none"]
