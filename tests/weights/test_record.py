"""WeightsRecord: the one record of trained and converted weights, written by both writers
and read back checked (a crafted record is one line, never a traceback)."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from idresnet.errors import UsageError
from idresnet.pretrained.record import make_record
from idresnet.version import __version__
from idresnet.weights import WeightsRecord, read_weights, save_checkpoint, save_weights
from idresnet.weights.checkpoint import FORMAT

STATE = {"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}


def test_a_record_survives_its_file(tmp_path):
    record = WeightsRecord(model="resnet20", model_kwargs={"width": 0.25}, num_classes=10, iteration=12)
    save_weights(tmp_path / "w.safetensors", STATE, record)
    state, read, file = read_weights(tmp_path / "w.safetensors")
    assert read == record and file == tmp_path / "w.safetensors" and state.keys() == STATE.keys()
    assert read.format == "idresnet-weights" and read.idresnet_version == __version__


def test_both_writers_write_the_same_keys():
    converted = make_record("preact_resnet20", {}, "cifar10", (0.5,) * 3, (0.25,) * 3, {"format": "t"}, 10)
    trained = WeightsRecord(model="preact_resnet20", dataset="cifar10", normalization=converted.normalization)
    assert set(converted.metadata()) == set(trained.metadata())
    assert converted.classes[0] == "airplane" and converted.input == {
        "crop": 32,
        "resize": 32,
        "interpolation": "bilinear",
    }


def test_keys_of_another_writer_are_kept_and_a_bare_file_has_no_record(tmp_path):
    save_weights(tmp_path / "w.safetensors", STATE, {"model": "resnet20", "trained_by": "someone"})
    _, record, _ = read_weights(tmp_path / "w.safetensors")
    assert record.extra == {"trained_by": "someone"} and record.metadata()["trained_by"] == "someone"
    assert record.idresnet_version is None  # not stamped with this version on reading
    save_weights(tmp_path / "bare.safetensors", STATE, {})
    bare = read_weights(tmp_path / "bare.safetensors")[1]
    assert bare.model is None and bare.model_kwargs == {} and bare.format is None


def test_a_checkpoint_holds_the_record_and_its_iteration(tmp_path):
    meta = WeightsRecord(model="resnet20").metadata()
    save_checkpoint(tmp_path / "last.ckpt", {"model": STATE, "meta": meta, "iteration": 7})
    _, record, _ = read_weights(tmp_path / "last.ckpt")
    assert record.model == "resnet20" and record.iteration == 7
    assert FORMAT == "idresnet-checkpoint"


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("model", 3, "a model name"),
        ("model_kwargs", ["width"], "a mapping of model options"),
        ("num_classes", 0, "an integer in [1, 1000000]"),
        ("classes", "cat dog", "a list of class names"),
        ("class_ids", [1, 2], "a list of class names"),
        ("normalization", {"mean": [0, 0, 0], "std": [0, 1, 1]}, "std: three finite numbers > 0"),
        ("image_shape", [32, 32], "[height, width, channels], positive integers"),
        ("input", {"crop": "big", "resize": 256}, "a mapping with crop and resize, positive integers"),
        ("dataset_args", [1], "a mapping"),
        ("source", "x", "a mapping"),
    ],
)
def test_a_crafted_record_is_one_line(tmp_path, key, value, expected):
    path = tmp_path / "w.safetensors"
    save_file(STATE, str(path), metadata={"model": json.dumps("resnet20"), key: json.dumps(value)})
    with pytest.raises(UsageError) as err:
        read_weights(path)
    assert f"recorded {key} " in str(err.value) and expected in str(err.value) and "\n" not in str(err.value)


def test_records_are_values():
    record = WeightsRecord(model="resnet20")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.model = "resnet56"  # type: ignore[misc]
    assert dataclasses.replace(record, iteration=3).iteration == 3 and record.iteration is None
