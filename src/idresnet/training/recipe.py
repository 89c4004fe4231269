"""The paper's two training recipes, as defaults of the config fields marked ``recipe``.

CIFAR (Sec. 4.2): batch 128, 64k iterations, lr /10 at 32k and 48k, 400 warm-up
iterations at 0.01. ImageNet (Sec. 5, Table 5): batch 256, lr /10 at epochs 30 and 60,
no warm-up, 90 epochs (fb.resnet.torch's length; the paper gives only the drops). A
recipe field left unset (None) is filled in when a :class:`TrainConfig` is made, so
``config.yaml`` records numbers; a value given is kept. An iteration count given (not the
recipe's) scales the recipe's warm-up with it, as ``budget`` does: 200 CIFAR iterations
warm up for round(400 x 200 / 64,000) = 1.
"""

from __future__ import annotations

from idresnet.data.sources import STREAMED
from idresnet.errors import ConfigError

RECIPES = {
    "cifar": {
        "batch_size": 128,
        "schedule_unit": "iter",
        "iterations": 64000,
        "lr_milestones": [32000, 48000],
        "warmup_iters": 400,
    },
    "imagenet": {
        "batch_size": 256,
        "schedule_unit": "epoch",
        "epochs": 90,
        "epoch_milestones": [30, 60],
        "warmup_iters": 0,
    },
}


def recipe_name(dataset: str) -> str:
    return "imagenet" if dataset in STREAMED else "cifar"


# The CIFAR recipe's milestones as fractions of the run (32k/64k, 48k/64k): the default
# milestones of an iteration count or epoch count given without its own milestones.
DEFAULT_MILESTONE_FRACTIONS = (0.5, 0.75)


def _fractions(total: int) -> list[int]:
    """Milestones at 1/2 and 3/4 of ``total`` (the CIFAR recipe's 32k and 48k of 64k)."""
    return sorted({m for m in (round(f * total) for f in DEFAULT_MILESTONE_FRACTIONS) if m >= 1})


def _thirds(total: int) -> list[int]:
    """Milestones at 1/3 and 2/3 of ``total`` (the ImageNet recipe's 30 and 60 of 90)."""
    return sorted({m for m in (round(total / 3), round(2 * total / 3)) if m >= 1})


def apply_recipe(c) -> None:
    """Fill the recipe fields left unset from the dataset's recipe.

    cifar: batch 128, 64k iterations, milestones 32k and 48k, 400 warm-up iterations
    (when ``iterations`` N is given: milestones at N/2 and 3N/4, warm-up 400 x N / 64k;
    an epoch schedule's milestones at 1/2 and 3/4 of its ``epochs``).
    imagenet: batch 256, 90 epochs, milestones at epochs 30 and 60 (1/3 and 2/3 of
    ``epochs`` when that is given), no warm-up; giving ``iterations`` or ``lr_milestones``
    without ``schedule_unit`` selects an iteration schedule (milestones default to 1/3
    and 2/3 of the iterations).
    """
    name = recipe_name(c.dataset)
    recipe = RECIPES[name]
    if c.batch_size is None:
        c.batch_size = recipe["batch_size"]
    if c.warmup_iters is None:
        c.warmup_iters = _warmup_iters(recipe, c)
    if name == "cifar":
        if c.lr_milestones is None:  # the recipe's, or at its fractions of the iterations given
            given = c.iterations is not None and c.schedule_unit != "epoch"
            c.lr_milestones = _fractions(c.iterations) if given else list(recipe["lr_milestones"])
        for key in ("schedule_unit", "iterations"):
            if getattr(c, key) is None:
                setattr(c, key, recipe[key])
        if c.schedule_unit == "epoch" and c.epochs is not None and c.epoch_milestones is None:
            c.epoch_milestones = _fractions(c.epochs)
        return
    if c.schedule_unit is None:
        c.schedule_unit = "iter" if c.iterations is not None or c.lr_milestones is not None else "epoch"
    if c.schedule_unit == "epoch":
        if c.epochs is None:
            c.epochs = recipe["epochs"]
        if c.epoch_milestones is None:
            c.epoch_milestones = _thirds(c.epochs)
    else:
        if c.iterations is None:
            raise ConfigError(
                "schedule_unit 'iter' needs iterations (--iterations N); the imagenet "
                "recipe counts 90 epochs (--schedule-unit epoch)"
            )
        if c.lr_milestones is None:
            c.lr_milestones = _thirds(c.iterations)


def _warmup_iters(recipe: dict, c) -> int:
    """The recipe's warm-up, scaled by ``iterations`` / the recipe's iterations where an
    iteration count is given (so ``--iterations 200`` keeps the warm-up's share of the run,
    as ``--budget`` does); epoch schedules keep the recipe's."""
    if c.iterations is None or "iterations" not in recipe or c.schedule_unit == "epoch":
        return recipe["warmup_iters"]
    return round(recipe["warmup_iters"] * c.iterations / recipe["iterations"])


def recipe_default(name: str) -> str | None:
    """The default of a recipe field as text, for help messages."""
    values = [f"{recipe} {RECIPES[recipe][name]}" for recipe in RECIPES if name in RECIPES[recipe]]
    return ", ".join(values) if values else None


FULL_SCHEDULE_FAIL_THRESHOLD = 20.0  # test error (%) above which a full-schedule run 'failed'


def is_full_schedule(c) -> bool:
    """Whether ``c`` trains at least the recipe's whole schedule (the paper's setting)."""
    if c.budget < 1:
        return False
    recipe = RECIPES[recipe_name(c.dataset)]
    if c.schedule_unit == "epoch":
        return c.epochs is not None and c.epochs >= recipe.get("epochs", 0)
    # a recipe that counts epochs (imagenet) has no whole schedule in iterations
    return c.iterations is not None and "iterations" in recipe and c.iterations >= recipe["iterations"]


def fail_threshold(c) -> float | None:
    """The test error above which the run is 'failed', or None when it is not judged:
    a value given is always applied; by default the paper's 20% applies to full-schedule
    runs only (a reduced run is not expected to reach it)."""
    if c.fail_threshold is not None:
        return c.fail_threshold
    return FULL_SCHEDULE_FAIL_THRESHOLD if is_full_schedule(c) else None


def reduced_schedule_message(c, schedule) -> str:
    """Why a run of config ``c`` on ``schedule`` (a :class:`~idresnet.training.schedule.Schedule`)
    is not judged 'failed': how much of the recipe's schedule it trained, e.g. ``200 of 64,000
    iterations`` or ``9 of 90 epochs, budget 0.1``."""
    recipe = RECIPES[recipe_name(c.dataset)]
    if c.schedule_unit == "epoch":
        unit, done = "epochs", f"{schedule.iterations / schedule.iters_per_epoch:g}"
    else:
        unit, done = "iterations", f"{schedule.iterations:,}"
    of = f" of {recipe[unit]:,}" if unit in recipe else ""
    budget = f", budget {c.budget:g}" if c.budget != 1 else ""
    return (
        f"not judged against the paper's {FULL_SCHEDULE_FAIL_THRESHOLD:g}% 'fail' threshold: "
        f"a reduced schedule ({done}{of} {unit}{budget})"
    )
