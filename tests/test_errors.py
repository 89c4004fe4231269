"""Unknown names get the valid ones and, where some are close, a "did you mean" (issue #23)."""

import pytest

from idresnet.errors import UsageError, choices_error, close_matches, did_you_mean


def test_close_names_are_suggested_best_first():
    message = str(choices_error("model", "preact_resnet16", ["vgg16", "preact_resnet164", "preact_resnet1001"]))
    assert message == (
        "unknown model 'preact_resnet16'; valid: vgg16, preact_resnet164, preact_resnet1001; "
        "did you mean 'preact_resnet164' or 'preact_resnet1001'?"
    )
    assert close_matches("PreAct_ResNet110", ["preact_resnet110", "preact_resnet1101"]) == ["preact_resnet110"]
    assert did_you_mean("tran", ["train", "eval", "models"]) == "; did you mean 'train'?"
    assert did_you_mean("zzz", ["train", "eval"]) == ""  # nothing close: the list alone
    assert str(choices_error("stride", 2, (0, 1))) == "unknown stride 2; valid: 0, 1"


@pytest.mark.parametrize(
    "call, suggestion",
    [
        (lambda: __import__("idresnet").create_model("preact_resnet16"), "'preact_resnet164'"),
        (lambda: __import__("idresnet").create_model("preact_resnet110", shortcutt="gate"), "'shortcut'"),
        (lambda: __import__("idresnet").create_model("resnet110", shortcut="exclusive_gat"), "'exclusive_gate'"),
        (lambda: _table("tabel3"), "'table3'"),
        (lambda: _table("table3").select(["cifar10_preact_resnet16"]), "'cifar10_preact_resnet164'"),
        (lambda: _scale("reducd"), "'reduced'"),
        (lambda: _config(dataset="cifar-10"), "'cifar10'"),
        (lambda: _config(logger="tensorbord"), "'tensorboard'"),
        (lambda: _config(model="preact_resnet1O01"), "'preact_resnet1001'"),
        (lambda: _config(activation_checkpointing="segmnt:2"), "'segment'"),
        (lambda: _load_config({"lr_milstones": [1]}), "'lr_milestones'"),
        (lambda: _mode("channel_last"), "'channels_last'"),
    ],
)
def test_names_chosen_from_a_list_suggest_the_close_ones(call, suggestion):
    with pytest.raises(UsageError) as exc:
        call()
    assert f"did you mean {suggestion}" in str(exc.value) and "\n" not in str(exc.value)


def _table(name):
    from idresnet.experiments import load_table

    return load_table(name)


def _scale(name):
    from idresnet.experiments import resolve_scale

    return resolve_scale(name)


def _config(**values):
    from idresnet.training import TrainConfig

    return TrainConfig(**{"model": "resnet20", **values})


def _load_config(values):
    from idresnet.training import load_config

    return load_config(None, {"model": "resnet20", **values})


def _mode(text):
    from idresnet.perf.modes import parse_mode

    return parse_mode(text)
