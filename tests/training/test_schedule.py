"""The learning-rate schedule is the paper's recipe, exactly, at its boundaries."""

import pytest

from idresnet.training import TrainConfig
from idresnet.training.schedule import build_schedule

CIFAR_EPOCH = 390  # 50,000 // 128 iterations per epoch


def paper(**changes):
    return build_schedule(TrainConfig(model="preact_resnet164", **changes), CIFAR_EPOCH)


def test_default_recipe_lr_exact_at_boundaries():
    s = paper()
    assert s.iterations == 64000 and s.milestones == (32000, 48000) and s.warmup_iters == 400
    expected = {0: 0.01, 399: 0.01, 400: 0.1, 31999: 0.1, 32000: 0.01, 47999: 0.01, 48000: 0.001, 63999: 0.001}
    # exact equality: 0.1 * 0.1 is 0.010000000000000002 in floating point; the recipe says 0.01
    assert {it: s.lr(it) for it in expected} == expected


def test_warmup_hands_the_rate_back():
    s = paper()
    assert [s.lr(i) for i in (398, 399, 400, 401)] == [0.01, 0.01, 0.1, 0.1]


@pytest.mark.parametrize(
    "budget, total, ms, warm",
    [(0.1, 6400, (3200, 4800), 40), (0.5, 32000, (16000, 24000), 200), (0.01, 640, (320, 480), 4)],
)
def test_budget_scales_everything_together(budget, total, ms, warm):
    s = paper(budget=budget)
    assert (s.iterations, s.milestones, s.warmup_iters) == (total, ms, warm)
    assert [s.lr(i) for i in (0, warm - 1, warm, ms[0] - 1, ms[0], ms[1] - 1, ms[1], total - 1)] == [
        0.01,
        0.01,
        0.1,
        0.1,
        0.01,
        0.01,
        0.001,
        0.001,
    ]
    assert s.record()["budget"] == budget and s.record()["iterations"] == total


def test_epoch_mode_drops_exactly_at_epoch_boundaries():
    s = paper(schedule_unit="epoch", epochs=164, epoch_milestones=[82, 123], warmup_iters=0)
    assert s.iterations == 164 * CIFAR_EPOCH and s.milestones == (82 * CIFAR_EPOCH, 123 * CIFAR_EPOCH)
    assert s.lr(82 * CIFAR_EPOCH - 1) == 0.1 and s.lr(82 * CIFAR_EPOCH) == 0.01
    assert s.lr(123 * CIFAR_EPOCH) == 0.001 and s.epoch(82 * CIFAR_EPOCH) == 82


def test_epoch_mode_default_milestones_are_the_recipe_fractions():
    from idresnet.training import TrainConfig

    recorded = TrainConfig(model="preact_resnet164", schedule_unit="epoch", epochs=100).epoch_milestones
    assert recorded == [50, 75]  # filled in by the recipe, so config.yaml records the numbers
    s = paper(schedule_unit="epoch", epochs=100)
    assert s.milestones == (50 * CIFAR_EPOCH, 75 * CIFAR_EPOCH)
    half = paper(schedule_unit="epoch", epochs=100, budget=0.5)
    assert half.iterations == 50 * CIFAR_EPOCH and half.milestones == (25 * CIFAR_EPOCH, 37.5 * CIFAR_EPOCH)


def test_imagenet_style_epoch_schedule():
    s = build_schedule(
        TrainConfig(
            model="imagenet_preact_resnet200",
            schedule_unit="epoch",
            epochs=90,
            epoch_milestones=[30, 60],
            warmup_iters=0,
        ),
        5004,
    )
    assert [s.lr(i) for i in (0, 30 * 5004 - 1, 30 * 5004, 60 * 5004)] == [0.1, 0.1, 0.01, 0.001]


def test_no_warmup_and_other_gamma():
    s = paper(warmup_iters=0, lr_gamma=0.2, lr=0.5)
    assert [s.lr(0), s.lr(32000), s.lr(48000)] == [0.5, 0.1, 0.02]


def test_linear_lr_scaling_uses_the_recipes_batch():
    imagenet = dict(model="imagenet_resnet50", dataset="imagenet", data="/d", lr_scaling="linear")
    s = build_schedule(TrainConfig(**imagenet, batch_size=1024), 1251)
    assert s.base_lr == 0.4 and s.lr(0) == 0.4 and s.lr(30 * 1251) == 0.04  # no warm-up
    assert s.record()["base_lr"] == 0.4
    assert build_schedule(TrainConfig(**imagenet, batch_size=64), 1).base_lr == 0.025
    assert paper(lr_scaling="linear", batch_size=256).base_lr == 0.2  # CIFAR: 0.1 is for 128
    assert paper(batch_size=256).base_lr == 0.1  # no scaling unless asked
    assert paper(lr_scaling="linear", batch_size=256).lr(0) == 0.01  # warm-up not scaled


@pytest.mark.parametrize(
    "iterations, ms, warm",
    [(200, [100, 150], 1), (80, [40, 60], 0), (6400, [3200, 4800], 40), (64000, [32000, 48000], 400)],
)
def test_iterations_given_scale_the_warmup_as_budget_does(iterations, ms, warm):
    """Issue #23: --iterations 200 --lr-milestones 100 150 warmed up for the recipe's 400
    iterations, so the whole run trained at 0.01. The warm-up now keeps its share of the
    run: 400 x N / 64,000, as --budget N/64000 gives."""
    s = paper(iterations=iterations, lr_milestones=ms)
    assert (s.iterations, s.milestones, s.warmup_iters) == (iterations, tuple(ms), warm)
    assert s.lr(warm) == 0.1 and s.lr(ms[0] - 1) == 0.1 and s.lr(ms[0]) == 0.01 and s.lr(ms[1]) == 0.001
    assert s.lr(0) == (0.01 if warm else 0.1)
    by_budget = paper(budget=iterations / 64000)
    assert (by_budget.iterations, by_budget.milestones, by_budget.warmup_iters) == (s.iterations, s.milestones, warm)


def test_a_warmup_given_or_an_epoch_schedule_is_not_rescaled():
    assert paper(iterations=200, lr_milestones=[100, 150], warmup_iters=5).warmup_iters == 5
    assert paper(iterations=200, lr_milestones=[100, 150], warmup_iters=0).lr(0) == 0.1
    epochs = paper(schedule_unit="epoch", epochs=100, iterations=200)  # epochs count; iterations unused
    assert epochs.warmup_iters == 400 and epochs.iterations == 100 * CIFAR_EPOCH
