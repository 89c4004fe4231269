"""TrainConfig: the paper's defaults, YAML + override precedence, one-line errors."""

import pytest
import yaml

from idresnet.errors import ConfigError
from idresnet.training import TrainConfig, load_config
from idresnet.training.config import FIELDS, INFO_KEY, parse_model_kwargs
from idresnet.training.recipe import fail_threshold


def test_defaults_are_the_paper_recipe():
    c = TrainConfig(model="preact_resnet164")
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.nesterov) == (128, 0.1, 0.9, 1e-4, False)
    assert (c.iterations, c.lr_milestones, c.lr_gamma) == (64000, [32000, 48000], 0.1)
    assert (c.warmup_iters, c.warmup_lr, c.fail_threshold, c.budget) == (400, 0.01, None, 1.0)
    assert fail_threshold(c) == 20.0  # the paper's "fail" judges a full-schedule run
    assert c.dataset == "cifar10" and c.schedule_unit == "iter"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "model: preact_resnet110\nlr: 0.05\nlr_milestones: [1000, 2000]\nmodel_kwargs: {width: 0.5}\nbatch_size: 64\n"
    )
    c = load_config(path, {"lr": "0.2", "seed": "3"})  # flags arrive as strings
    assert (c.model, c.lr, c.seed, c.batch_size) == ("preact_resnet110", 0.2, 3, 64)
    assert c.lr_milestones == [1000, 2000] and c.model_kwargs == {"width": 0.5}


def test_resolved_config_round_trips_through_yaml(tmp_path):
    c = TrainConfig(
        model="resnet110",
        model_kwargs={"shortcut": "exclusive_gate", "gate_bias": -6},
        budget=0.1,
        channels_last=False,
        progress="auto",
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**c.to_dict(), INFO_KEY: {"anything": 1}}))
    assert load_config(path) == c


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("0.1", 0.1), ("3", 3.0)])
def test_numbers_from_strings(text, value):
    assert TrainConfig(model="resnet20", weight_decay=text).weight_decay == value


def test_strings_for_lists_optionals_and_bools():
    c = TrainConfig(
        model="resnet20",
        lr_milestones="1000,2000",
        eval_interval="none",
        nesterov="true",
        channels_last="auto",
        iterations="64000",
        epoch_milestones=["3", "6"],
    )
    assert c.lr_milestones == [1000, 2000] and c.eval_interval is None and c.nesterov is True
    assert c.channels_last == "auto" and c.iterations == 64000 and c.epoch_milestones == [3, 6]


def test_model_kwargs_from_key_value_strings():
    assert parse_model_kwargs(["width=0.5", "shortcut=scaling", "shortcut-scale=0", "dropout_rescale=false"]) == {
        "width": 0.5,
        "shortcut": "scaling",
        "shortcut_scale": 0,
        "dropout_rescale": False,
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_model_kwargs(["width"])


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_unknown_yaml_key_lists_the_valid_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: resnet20\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = one_line(exc)
    assert "'learning_rate'" in msg and all(name in msg for name in FIELDS)


def test_unknown_override_key():
    with pytest.raises(ConfigError, match="unknown config key 'bogus'.*valid: model, model_kwargs"):
        load_config(None, {"model": "resnet20", "bogus": 1})


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"amp": "fp8"}, "unknown amp 'fp8'; valid: auto, bf16, off"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist'; valid: cifar10, cifar100, folder, synthetic, imagenet"),
        ({"model": "resnet19"}, "unknown model 'resnet19'; valid: resnet20"),
        ({"lr": "fast"}, "invalid lr 'fast': expected a number"),
        ({"batch_size": 0}, "invalid batch_size 0: must be >= 1"),
        ({"batch_size": 1.5}, "invalid batch_size 1.5: expected an integer"),
        ({"lr_milestones": [200, 100]}, "strictly increasing"),
        ({"momentum": 1.0}, r"in \[0, 1\)"),
        ({"schedule_unit": "epoch"}, "needs epochs"),
        ({"device": "gpu"}, "auto, cpu, cuda, cuda:N or mps"),
        ({"nesterov": "maybe"}, "expected true or false"),
        ({"budget": 0}, "must be > 0"),
        ({"fail_threshold": 120}, r"in \[0, 100\]"),
        ({"dataset": "synthetic", "data": "/x"}, "takes no --data"),
        ({"threads": 0}, "invalid threads 0: must be >= 1"),
    ],
)
def test_bad_values_are_one_line_errors(changes, pattern):
    with pytest.raises(ConfigError, match=pattern) as exc:
        TrainConfig(**{"model": "resnet20", **changes})
    one_line(exc)


@pytest.mark.parametrize(
    "changes, pattern",
    [
        (
            {"iterations": 200, "lr_milestones": [100, 150], "warmup_iters": 100},
            r"reaches the first lr milestone \(100\)",
        ),
        ({"lr_milestones": [100, 200]}, r"warm-up of 400 iterations reaches the first lr milestone \(100\)"),
        ({"iterations": 300, "lr_milestones": [], "warmup_iters": 400}, r"reaches the end of the run \(300\)"),
        (
            {"budget": 0.01, "lr_milestones": [300, 400]},  # 4 warm-up iterations, the first drop at 3
            r"warm-up of 4 iterations \(warmup_iters 400 x budget 0.01\) reaches the first lr milestone \(3\)",
        ),
    ],
)
def test_a_warmup_that_swallows_the_schedule_is_one_line(changes, pattern):
    """Issue #23: a warm-up reaching the first milestone trains at warmup_lr throughout."""
    with pytest.raises(ConfigError, match=pattern) as exc:
        TrainConfig(model="resnet20", **changes)
    assert "--warmup-iters" in one_line(exc)


def test_the_warmup_check_spares_runs_already_recorded(tmp_path):
    """A run recorded before the check (warm-up 400, milestones 100 and 150) still reads and
    resumes: its schedule is what it trained with."""
    from idresnet.training.rundir import CONFIG, read_run_config

    assert TrainConfig(model="resnet20", iterations=200, lr_milestones=[100, 150], warmup_iters=99).warmup_iters == 99
    old = dict(model="resnet20", iterations=200, lr_milestones=[100, 150], warmup_iters=400, out=str(tmp_path))
    recorded = TrainConfig(**old, resume=True).to_dict()
    (tmp_path / CONFIG).write_text(yaml.safe_dump({**recorded, "resume": False, INFO_KEY: {}}))
    assert read_run_config(tmp_path)[0].warmup_iters == 400


def test_resume_needs_a_run_folder():
    with pytest.raises(ConfigError, match="--resume needs --out RUN"):
        TrainConfig(model="resnet20", resume=True)


def test_missing_model():
    with pytest.raises(ConfigError, match="no model given"):
        TrainConfig()


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_imagenet_recipe_defaults_and_round_trip(tmp_path):
    c = TrainConfig(model="imagenet_preact_resnet200", dataset="imagenet", data="/data/imagenet")
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.lr_scaling) == (256, 0.1, 0.9, 1e-4, "none")
    assert (c.schedule_unit, c.epochs, c.epoch_milestones, c.warmup_iters) == ("epoch", 90, [30, 60], 0)
    assert c.iterations is None and c.lr_milestones is None  # an epoch schedule
    assert (c.augmentation, c.train_crop, c.scale_range, c.eval_crops, c.eval_resize) == (
        "scale",
        224,
        [256, 480],
        [224],
        None,
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(c.to_dict()))
    assert load_config(path) == c
    short = TrainConfig(model="imagenet_resnet50", dataset="imagenet", data="/d", epochs=12)
    assert short.epoch_milestones == [4, 8]  # a third and two thirds, as 30 and 60 of 90
    iters = TrainConfig(model="imagenet_resnet50", dataset="imagenet", data="/d", iterations=300)
    assert (iters.schedule_unit, iters.lr_milestones, iters.epochs) == ("iter", [100, 200], None)
    mine = TrainConfig(
        model="imagenet_resnet50", dataset="imagenet", data="/d", batch_size=64, warmup_iters=5, epoch_milestones=[2]
    )
    assert (mine.batch_size, mine.warmup_iters, mine.epoch_milestones) == (64, 5, [2])


def test_cifar_recipe_is_unchanged_by_the_recipe_fields():
    c = TrainConfig(model="resnet20", dataset="cifar100", iterations=1000)
    # the schedule keeps the recipe's shape: milestones at 1/2 and 3/4 of the iterations given
    # (not 32k and 48k, which 1,000 iterations never reach), the warm-up 400 x 1000 / 64000 = 6.25 -> 6
    assert (c.batch_size, c.lr_milestones, c.warmup_iters, c.schedule_unit) == (128, [500, 750], 6, "iter")
    assert c.epochs is None and c.epoch_milestones is None


def test_iterations_given_alone_train_the_recipe_shape_as_the_budget_does():
    from idresnet.training.schedule import build_schedule

    by_count = build_schedule(TrainConfig(model="resnet20", iterations=6400), 390)
    by_budget = build_schedule(TrainConfig(model="resnet20", budget=0.1), 390)
    assert by_count.milestones == by_budget.milestones == (3200, 4800)
    assert by_count.warmup_iters == by_budget.warmup_iters == 40
    assert [by_count.lr(i) for i in (39, 40, 3199, 3200, 4800)] == [0.01, 0.1, 0.1, 0.01, 0.001]
    # milestones given are kept as given
    assert TrainConfig(model="resnet20", iterations=6400, lr_milestones=[1000]).lr_milestones == [1000]


def test_threads_sets_torchs_cpu_threads_for_the_run_and_may_change_on_resume(tmp_path):
    import torch
    from trainhelpers import TINY

    from idresnet.training import train
    from idresnet.training.config import RESUME_MUTABLE
    from idresnet.training.engine import _Trainer
    from idresnet.training.rundir import read_run_info

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen = []
        real_step = _Trainer._step

        def step(self, x, y):
            seen.append(torch.get_num_threads())
            return real_step(self, x, y)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_Trainer, "_step", step)
            result = train(
                TrainConfig(
                    **{
                        **TINY,
                        "iterations": 2,
                        "lr_milestones": [1],
                        "warmup_iters": 0,
                        "eval_interval": 2,
                        "threads": 1,
                        "out": str(tmp_path / "run"),
                    }
                )
            )
        assert seen == [1, 1]  # the run's steps ran on the given count ...
        assert torch.get_num_threads() == 2  # ... and the caller's count is back afterwards
        info = read_run_info(result.run_dir)
        assert info["threads"] == 1 and info["device_name"].endswith(", 1 threads)")
    finally:
        torch.set_num_threads(before)
    assert "threads" in RESUME_MUTABLE


@pytest.mark.parametrize(
    "values, threshold",
    [
        ({}, 20.0),  # the full schedule: the paper's "fail" applies
        ({"budget": 0.01}, None),  # a reduced schedule is not judged ...
        ({"iterations": 640, "lr_milestones": [320, 480]}, None),
        ({"budget": 0.01, "fail_threshold": 50}, 50.0),  # ... unless a threshold is given
        ({"dataset": "imagenet", "data": "x", "epochs": 90}, 20.0),
        ({"dataset": "imagenet", "data": "x", "epochs": 10}, None),
        # an iteration schedule of imagenet: its recipe counts epochs, so it is not judged
        ({"dataset": "imagenet", "data": "x", "iterations": 2}, None),
    ],
)
def test_fail_threshold_applies_to_full_schedules_or_when_given(values, threshold):
    assert fail_threshold(TrainConfig(model="preact_resnet20", **values)) == threshold


@pytest.mark.parametrize(
    "values, iters_per_epoch, part",
    [
        ({"iterations": 200, "lr_milestones": [100, 150]}, 390, "200 of 64,000 iterations"),  # said "budget 1"
        ({"budget": 0.1}, 390, "6,400 of 64,000 iterations, budget 0.1"),
        ({"dataset": "imagenet", "data": "x", "epochs": 9}, 5004, "9 of 90 epochs"),
        ({"dataset": "imagenet", "data": "x", "budget": 0.05}, 5004, "4.5 of 90 epochs, budget 0.05"),
    ],
)
def test_the_reduced_schedule_message_says_how_much_was_trained(values, iters_per_epoch, part):
    from idresnet.training.recipe import reduced_schedule_message
    from idresnet.training.schedule import build_schedule

    c = TrainConfig(model="preact_resnet20", **values)
    assert reduced_schedule_message(c, build_schedule(c, iters_per_epoch)) == (
        f"not judged against the paper's 20% 'fail' threshold: a reduced schedule ({part})"
    )


@pytest.mark.parametrize("key", ["lr", "momentum", "weight_decay", "budget", "warmup_lr", "fail_threshold"])
def test_non_finite_numbers_are_refused(key):
    for value in (float("inf"), float("nan")):
        with pytest.raises(ConfigError, match=f"invalid {key} .*finite"):
            TrainConfig(model="preact_resnet20", **{key: value})
