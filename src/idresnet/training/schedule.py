"""The learning-rate schedule as a pure function of the iteration.

The paper's CIFAR recipe (He et al. 2016, Sec. 4.2): lr 0.1, warm-up at 0.01 for the
first 400 iterations, then back to 0.1, divided by 10 at 32k and 48k iterations, stop
at 64k. Because the learning rate is a function of the iteration alone, resuming a run
restores the schedule position exactly: there is no scheduler state to lose.

``schedule_unit: epoch`` gives the boundaries in epochs (``epochs``,
``epoch_milestones``); they are converted to iterations with the run's iterations per
epoch, so the learning rate changes exactly at epoch boundaries. ``budget`` then scales
the total, the milestones and the warm-up together (rounded to whole iterations), for
reduced runs that keep the recipe's shape.

``lr_scaling: linear`` multiplies the base rate by the global batch over the recipe's
batch (Goyal et al. 2017: ImageNet's 0.1 is for 256, so batch 1024 trains at 0.4);
``warmup_lr`` is not scaled.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from idresnet.training.recipe import RECIPES, recipe_name


def clean_lr(x: float) -> float:
    """``x`` rounded to 12 significant digits, so 0.1 * 0.1 is 0.01 as the recipe writes it."""
    return float(f"{x:.12g}")


@dataclass(frozen=True)
class Schedule:
    """An absolute schedule in iterations (after epoch conversion and budget scaling)."""

    iterations: int
    milestones: tuple[int, ...]
    warmup_iters: int
    base_lr: float
    gamma: float
    warmup_lr: float
    iters_per_epoch: int
    budget: float = 1.0

    def lr(self, iteration: int) -> float:
        """The learning rate used for the update of iteration ``iteration`` (0-based)."""
        if iteration < self.warmup_iters:
            return self.warmup_lr
        return clean_lr(self.base_lr * self.gamma ** bisect_right(self.milestones, iteration))

    def epoch(self, iteration: int) -> float:
        return iteration / self.iters_per_epoch

    def record(self) -> dict:
        """Plain numbers for the run folder."""
        return {
            "iterations": self.iterations,
            "base_lr": self.base_lr,
            "lr_milestones": list(self.milestones),
            "warmup_iters": self.warmup_iters,
            "iters_per_epoch": self.iters_per_epoch,
            "epochs": round(self.iterations / self.iters_per_epoch, 3),
            "budget": self.budget,
        }


def scaled(n: int, budget: float, least: int = 0) -> int:
    """``n`` iterations of the schedule at ``budget``: rounded, at least ``least``."""
    return max(least, round(n * budget))


def base_lr(cfg) -> float:
    """``cfg.lr``, scaled by global batch / the recipe's batch with ``lr_scaling: linear``."""
    if cfg.lr_scaling != "linear":
        return cfg.lr
    return clean_lr(cfg.lr * cfg.batch_size / RECIPES[recipe_name(cfg.dataset)]["batch_size"])


def build_schedule(cfg, iters_per_epoch: int) -> Schedule:
    """The absolute schedule of config ``cfg`` for ``iters_per_epoch`` batches per epoch."""
    if cfg.schedule_unit == "epoch":
        total = cfg.epochs * iters_per_epoch
        milestones = [m * iters_per_epoch for m in cfg.epoch_milestones]  # the recipe's when not given
    else:
        total, milestones = cfg.iterations, list(cfg.lr_milestones)
    b = cfg.budget
    return Schedule(
        iterations=scaled(total, b, 1),
        milestones=tuple(sorted({scaled(m, b, 1) for m in milestones})),
        warmup_iters=scaled(cfg.warmup_iters, b),
        base_lr=base_lr(cfg),
        gamma=cfg.lr_gamma,
        warmup_lr=cfg.warmup_lr,
        iters_per_epoch=iters_per_epoch,
        budget=b,
    )
