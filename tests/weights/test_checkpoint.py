"""Checkpoints: atomic, tensors and plain types only (weights_only=True), damage is one line."""

import hashlib
import io
import random

import numpy as np
import pytest
import torch

from idresnet.errors import UsageError
from idresnet.files import atomic_write_bytes
from idresnet.seeding import rng_state, set_rng_state
from idresnet.weights import load_checkpoint, load_latest, load_weights, save_checkpoint, save_weights
from idresnet.weights.checkpoint import MAGIC


def sample_state():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "iteration": 7,
        "rng": [rng_state()],
        "meter": [1.0, 2.0, 3.0],
        "best_test_error": None,
        "config": {"model": "x", "lr_milestones": [1, 2], "model_kwargs": {"width": 0.5}},
    }


def test_round_trip_loads_with_weights_only(tmp_path):
    path = tmp_path / "last.ckpt"
    state = sample_state()
    save_checkpoint(path, state)
    data = path.read_bytes()  # MAGIC, the SHA-256 of the payload, the payload
    assert data[:8] == MAGIC and hashlib.sha256(data[40:]).digest() == data[8:40]
    raw = torch.load(io.BytesIO(data[40:]), weights_only=True)  # no pickled code needed
    assert raw["iteration"] == 7 and raw["config"]["model_kwargs"] == {"width": 0.5}
    loaded = load_checkpoint(path)
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "f"
    atomic_write_bytes(path, b"old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_is_a_one_line_error(tmp_path, damage):
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, sample_state())
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 100, "empty": b""}[damage])
    with pytest.raises(UsageError, match="damaged or not an idresnet checkpoint") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("offset", [100, -100, 45])
def test_flipped_bits_are_caught_by_the_checksum(tmp_path, offset):
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, sample_state())
    data = bytearray(path.read_bytes())
    for i in range(3):
        data[offset + i] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="checksum mismatch"):
        load_checkpoint(path)


def test_version_1_checkpoints_still_load(tmp_path):
    path = tmp_path / "old.ckpt"
    torch.save({"format": "idresnet-checkpoint", "version": 1, "iteration": 5}, path)
    assert load_checkpoint(path)["iteration"] == 5


def test_rotation_keeps_the_previous_checkpoint(tmp_path):
    last, prev = tmp_path / "last.ckpt", tmp_path / "previous.ckpt"
    for it in (1, 2, 3):
        save_checkpoint(last, {"iteration": it}, previous=prev)
    assert load_checkpoint(last)["iteration"] == 3 and load_checkpoint(prev)["iteration"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "previous.ckpt"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "missing"])
def test_load_latest_falls_back_to_the_previous_checkpoint(tmp_path, damage):
    last, prev = tmp_path / "last.ckpt", tmp_path / "previous.ckpt"
    save_checkpoint(last, {"iteration": 1}, previous=prev)
    save_checkpoint(last, {"iteration": 2}, previous=prev)
    data = bytearray(last.read_bytes())
    if damage == "truncate":
        last.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[-10] ^= 1
        last.write_bytes(bytes(data))
    else:
        last.unlink()
    warnings = []
    state, path = load_latest([last, prev], warn=warnings.append)
    assert state["iteration"] == 1 and path == prev
    assert len(warnings) == 1 and "resuming from previous.ckpt (iteration 1)" in warnings[0]


def test_load_latest_without_a_whole_checkpoint_is_one_line(tmp_path):
    last, prev = tmp_path / "last.ckpt", tmp_path / "previous.ckpt"
    last.write_bytes(MAGIC + b"x" * 50)
    with pytest.raises(UsageError, match="checksum mismatch.*no older whole checkpoint") as exc:
        load_latest([last, prev])
    assert "\n" not in str(exc.value)
    last.unlink()
    with pytest.raises(FileNotFoundError):
        load_latest([last, prev])


class Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_checkpoint_needing_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "idresnet-checkpoint", "version": 1, "x": Evil()}, path)
    with pytest.raises(UsageError, match="damaged or not an idresnet checkpoint"):
        load_checkpoint(path)
    assert "pickled code ran" not in capsys.readouterr().out


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(UsageError, match="not an idresnet checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_rng_states_restore_every_generator(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # leave a cached gaussian in numpy's state
    path = tmp_path / "rng.ckpt"
    save_checkpoint(path, {"rng": rng_state()})
    draws = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(load_checkpoint(path)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1])
    assert draws[2:] == again[2:]


def test_weights_round_trip_with_metadata(tmp_path):
    path = tmp_path / "w.safetensors"
    state = {
        "a": torch.randn(2, 3).contiguous(memory_format=torch.contiguous_format),
        "b": torch.randn(1, 4, 2, 2).to(memory_format=torch.channels_last),
    }
    save_weights(path, state, {"model": "resnet20", "model_kwargs": {"width": 0.5}, "num_classes": 10})
    tensors, meta = load_weights(path)
    assert all(torch.equal(tensors[k], state[k]) for k in state)
    assert meta == {"model": "resnet20", "model_kwargs": {"width": 0.5}, "num_classes": 10}
    path.write_bytes(b"not safetensors")
    with pytest.raises(UsageError, match="not a valid safetensors file"):
        load_weights(path)
