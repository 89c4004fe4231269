"""Size estimates before building: calibrated to measured memory, absurd sizes refused."""

import pytest
import torch
import torch.nn.functional as F

import idresnet
from idresnet.errors import ConfigError, UsageError
from idresnet.networks import model_info
from idresnet.networks.size import footprint
from idresnet.perf.memory import TensorMemoryTracker
from idresnet.training import TrainConfig
from idresnet.training.distributed import DistInfo
from idresnet.training.runtime import check_fits


def measured_per_image(name, **kw):
    peaks = []
    for batch in (2, 4):
        model = idresnet.create_model(name, **kw)
        x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        with TensorMemoryTracker() as tracker:
            F.cross_entropy(model(x), y).backward()
        peaks.append(tracker.peak)
    return (peaks[1] - peaks[0]) / 2


@pytest.mark.parametrize(
    "name, kw",
    [
        ("preact_resnet20", {}),
        ("preact_resnet20", {"width": 0.5}),
        ("resnet20", {"shortcut": "exclusive_gate"}),
        ("preact_resnet164", {"width": 0.25, "depth": 29}),
    ],
)
def test_activation_estimate_is_near_the_measured_peak(name, kw):
    info = model_info(name, **kw)
    est = footprint(
        "cifar", info["depth"], info["block"], kw.get("width", 1.0), 1, 32, shortcut=kw.get("shortcut", "identity")
    )["activation_bytes"]
    assert 0.6 < est / measured_per_image(name, **kw) < 1.6


@pytest.mark.parametrize(
    "name, kw",
    [
        ("preact_resnet110", {}),
        ("preact_resnet164", {}),
        ("imagenet_preact_resnet50", {}),
        ("resnet56", {"width": 0.5}),
    ],
)
def test_parameter_estimate_is_near_the_count(name, kw):
    info = model_info(name, with_params=True, **kw)
    est = footprint(info["family"], info["depth"], info["block"], kw.get("width", 1.0))["params"]
    assert 0.9 < est / info["params"] < 1.1


def test_absurd_networks_are_refused_in_one_line():
    with pytest.raises(UsageError, match="parameters .* of weights\\); this machine has") as exc:
        idresnet.create_model("resnet110", depth=60_000_002)
    assert "\n" not in str(exc.value)
    with pytest.raises(UsageError, match="this machine has"):
        idresnet.create_model("preact_resnet20", width=10_000)


@pytest.mark.parametrize("changes", [{"model_kwargs": {"depth": 600_002}}, {"batch_size": 10**7}])
def test_training_steps_beyond_memory_are_refused_before_any_work(changes):
    cfg = TrainConfig(model="preact_resnet20", dataset="synthetic", **changes)
    with pytest.raises(ConfigError, match="needs about .* for a training step .* this machine has"):
        check_fits(cfg, DistInfo())
    check_fits(TrainConfig(model="preact_resnet1001", dataset="synthetic", batch_size=8), DistInfo())
