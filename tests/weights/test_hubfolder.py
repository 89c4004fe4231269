"""``model.save_pretrained(DIR)`` and ``idresnet.from_pretrained(DIR)``: huggingface_hub's layout
(config.json, model.safetensors, README.md), an exact round trip for several networks and
layouts, the model card, and one-line refusals of a folder that misses a file or has a bad
config.json."""

import json
from pathlib import Path

import pytest
import torch
import yaml

import idresnet
from idresnet.errors import UsageError
from idresnet.files import file_digest
from idresnet.networks.cifar import cifar_resnet
from idresnet.units import UnitSpec
from idresnet.weights import WeightsRecord, load_weights
from idresnet.weights.hubfolder import CARD, CONFIG, WEIGHTS

NETWORKS = [
    ("preact_resnet20", {"width": 0.25}, 32),
    ("resnet20", {"width": 0.25, "shortcut": "exclusive_gate", "gate_bias": -3.0}, 32),
    ("preact_resnet164", {"depth": 29, "width": 0.25, "stride_index": 1, "first_preact": "residual"}, 32),
    ("imagenet_preact_resnet18", {"width": 0.125, "first_preact": "residual", "stage_preact": "residual"}, 64),
    ("imagenet_preact_resnet50", {"width": 0.125, "placement": "relu_only_preact", "num_classes": 7}, 64),
]


def trained_looking(model):
    """Random BN statistics and scales of both signs: a round trip that dropped or reset a
    buffer would change the outputs."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                m.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.mark.parametrize("name, options, size", NETWORKS, ids=[n for n, _, _ in NETWORKS])
def test_round_trip_is_exact(tmp_path, name, options, size):
    model = trained_looking(idresnet.create_model(name, **options))
    assert model.save_pretrained(tmp_path / "hub") == tmp_path / "hub"
    assert sorted(p.name for p in (tmp_path / "hub").iterdir()) == [CARD, CONFIG, WEIGHTS]
    back = idresnet.from_pretrained(tmp_path / "hub")
    assert not back.training and type(back) is type(model)
    a, b = model.state_dict(), back.state_dict()
    assert list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        assert torch.equal(model(x), back(x))
    assert back.pretrained_cfg["input_size"] == model.pretrained_cfg["input_size"]
    assert back.pretrained_cfg["mean"] == model.pretrained_cfg["mean"]


def test_config_names_every_option_so_the_defaults_do_not_matter(tmp_path):
    """config.json lists the network's layout and unit options resolved, not only those
    given: building from ``model_args`` alone gives the same network."""
    model = idresnet.create_model("preact_resnet164", depth=29, width=0.25, stride_index=1)
    model.save_pretrained(tmp_path / "hub")
    config = json.loads((tmp_path / "hub" / CONFIG).read_text())
    assert config["library_name"] == "idresnet" and config["architecture"] == "preact_resnet164"
    assert config["num_classes"] == 10 and config["num_features"] == model.num_features
    args = config["model_args"]
    network = {"depth", "width", "in_channels", "first_preact", "stage_preact", "stride_index"}
    assert network <= set(args) and set(model.spec.describe()) <= set(args)
    assert args["first_preact"] == "shared" and args["stride_index"] == 1 and args["projection_bn"] is False
    rebuilt = idresnet.create_model("preact_resnet164", **args)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    _, meta = load_weights(tmp_path / "hub" / WEIGHTS)  # a weights file of its own as well
    assert meta["model"] == "preact_resnet164" and meta["model_kwargs"] == args
    same = idresnet.create_model("preact_resnet164", pretrained=tmp_path / "hub")  # a hub folder is a weights path
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in same.state_dict().items())


def test_model_card_front_matter_and_what_is_known(tmp_path):
    model = idresnet.create_model("preact_resnet20", width=0.25)
    record = WeightsRecord(
        dataset="cifar10",
        dataset_description="CIFAR-10 (a test copy)",
        test_error=12.5,
        iteration=64,
        classes=[str(i) for i in range(10)],
    )
    about = {"recipe": "SGD, 64 iterations", "seeds": "3", "hardware": "a test machine"}
    model.save_pretrained(tmp_path / "hub", record=record, about=about)
    text = (tmp_path / "hub" / CARD).read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "idresnet" and "image-classification" in front["tags"]
    assert front["datasets"] == ["cifar10"] and front["metrics"] == ["accuracy"]
    cells = [line.strip().strip("|").split(" | ", 1) for line in text.splitlines()]
    rows = {c[0].strip(): c[1].strip() for c in cells if len(c) == 2 and c[0].strip()}
    assert rows["network"].startswith("`preact_resnet20`: CIFAR ResNet-20, pre-activation basic units, ")
    assert "`width=0.25`" in rows["layout options"] and "`first_preact=shared`" in rows["layout options"]
    assert rows["recipe"] == "SGD, 64 iterations" and rows["seeds"] == "3" and rows["hardware"] == "a test machine"
    assert rows["data"] == "CIFAR-10 (a test copy)"
    assert rows["final test error"].startswith("12.5% (accuracy 87.50%) at iteration 64")
    assert f"sha256 `{file_digest(tmp_path / 'hub' / WEIGHTS)}`" in rows["weights"]
    assert idresnet.from_pretrained(tmp_path / "hub").pretrained_cfg["classes"] == record.classes


def test_model_card_says_unknown_rather_than_invent(tmp_path):
    idresnet.create_model("resnet20", width=0.25).save_pretrained(tmp_path / "hub")
    text = (tmp_path / "hub" / CARD).read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert "datasets" not in front and "metrics" not in front  # no data, no error: none claimed
    for row in ("recipe", "data", "final test error", "seeds", "hardware"):
        assert f"| {row} | unknown |" in text


def test_half_precision_storage_loads_into_float32(tmp_path):
    model = trained_looking(idresnet.create_model("preact_resnet20", width=0.25))
    model.save_pretrained(tmp_path / "hub", dtype="float16")
    state, meta = load_weights(tmp_path / "hub" / WEIGHTS)
    assert meta["dtype"] == "float16" and state["fc.weight"].dtype == torch.float16
    assert {v.dtype for k, v in state.items() if k.endswith("num_batches_tracked")} == {torch.int64}
    back = idresnet.from_pretrained(tmp_path / "hub")
    assert back.fc.weight.dtype == torch.float32
    assert torch.equal(back.fc.weight, model.fc.weight.half().float())


def test_saving_over_a_hub_folder_replaces_it(tmp_path):
    idresnet.create_model("resnet20", width=0.25).save_pretrained(tmp_path / "hub")
    model = idresnet.create_model("preact_resnet20", width=0.25)
    model.save_pretrained(tmp_path / "hub")
    assert json.loads((tmp_path / "hub" / CONFIG).read_text())["architecture"] == "preact_resnet20"
    assert [p.name for p in tmp_path.iterdir()] == ["hub"]  # no temporary left


def test_a_network_not_built_by_the_registry_cannot_say_what_it_is(tmp_path):
    with pytest.raises(UsageError, match="needs a network built by idresnet.create_model"):
        cifar_resnet(1, UnitSpec()).save_pretrained(tmp_path / "hub")
    assert not (tmp_path / "hub").exists()


@pytest.fixture
def hub(tmp_path):
    idresnet.create_model("preact_resnet20", width=0.25).save_pretrained(tmp_path / "hub")
    return tmp_path / "hub"


def _edit_config(hub: Path, **values):
    config = json.loads((hub / CONFIG).read_text())
    config.update(values)
    (hub / CONFIG).write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda h: (h / CONFIG).unlink(), "{h} has no config.json; a hub folder holds config.json (architecture, "),
        (lambda h: (h / WEIGHTS).unlink(), "{h} has no model.safetensors; a hub folder holds config.json"),
        (
            lambda h: [(h / n).unlink() for n in (CONFIG, WEIGHTS)],
            "{h} has no config.json and no model.safetensors; a hub folder holds",
        ),
        (lambda h: (h / CONFIG).write_text("{not json"), "{h}/config.json: not JSON ("),
        (lambda h: (h / CONFIG).write_text("[1, 2]"), "{h}/config.json: not a JSON object; a hub folder's config.json"),
        (lambda h: _edit_config(h, architecture=None), "{h}/config.json: no architecture (a network name)"),
        (
            lambda h: _edit_config(h, architecture="preact_resnet21"),
            "{h}/config.json: unknown model 'preact_resnet21'; valid: resnet20,",
        ),
        (lambda h: _edit_config(h, model_args=[1]), "{h}/config.json: model_args is not a mapping of model options"),
        (
            lambda h: _edit_config(h, model_args={"widht": 0.25}),
            "{h}/config.json: unknown model option 'widht'; valid: depth,",
        ),
        (lambda h: _edit_config(h, num_classes="ten"), "{h}/config.json: num_classes 'ten' is not an integer"),
        (
            lambda h: _edit_config(h, model_args={"width": 0.5}),
            "{h}/model.safetensors does not fit preact_resnet20 {{'width': 0.5}} of its config.json:",
        ),
        (
            lambda h: _edit_config(h, architecture="resnet20"),
            "{h}: config.json names resnet20 but the record of model.safetensors names preact_resnet20",
        ),
        (lambda h: (h / WEIGHTS).write_bytes(b"garbage"), "{h}/model.safetensors is not a valid safetensors file"),
    ],
    ids=[
        "no-config",
        "no-weights",
        "neither",
        "not-json",
        "not-object",
        "no-architecture",
        "unknown-network",
        "bad-args",
        "unknown-option",
        "bad-classes",
        "does-not-fit",
        "other-network",
        "bad-weights",
    ],
)
def test_a_broken_folder_is_one_line(hub, damage, message):
    damage(hub)
    with pytest.raises(UsageError) as err:
        idresnet.from_pretrained(hub)
    text = str(err.value)
    assert "\n" not in text and message.format(h=hub) in text, text


def test_not_a_folder_is_one_line(tmp_path):
    for path, what in ((tmp_path / "nope", "no such folder"), (tmp_path / "f.safetensors", "a file")):
        path.touch() if what == "a file" else None
        with pytest.raises(UsageError, match=f"^{path}: {what}; a hub folder holds config.json"):
            idresnet.from_pretrained(path)
