"""hubconf.py: an entry per registered network, generated from the registry, each with its
docstring (``torch.hub.help``), and ``torch.hub.load(checkout, name, source="local")`` with
``pretrained=False`` and with ``pretrained=True`` fetched from a server on 127.0.0.1."""

import importlib.util
from pathlib import Path

import pytest
import torch
from localserver import Server

import idresnet
from idresnet.errors import UsageError
from idresnet.networks import registry
from idresnet.weights import load_weights, published

ROOT = Path(__file__).resolve().parents[2]


def load_hubconf():
    """hubconf.py as torch.hub imports it (a fresh module from the file)."""
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entrypoints(module) -> list[str]:
    """What ``torch.hub.list`` lists: the module's callables whose names do not start with _."""
    return sorted(f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_"))


def test_every_registered_network_has_an_entry_with_its_docstring():
    hub = load_hubconf()
    assert entrypoints(hub) == sorted(idresnet.list_models())
    assert set(hub.dependencies) == {"torch", "safetensors"}
    for name in idresnet.list_models():
        doc = getattr(hub, name).__doc__
        assert doc.startswith(f"{name}: {idresnet.model_info(name)['description']}") and "pretrained:" in doc
    assert "True: idresnet's published weights, preact ResNet-110 trained by idresnet" in hub.preact_resnet110.__doc__
    assert "True: none published for resnet110 (published: preact_resnet110, resnet20)" in hub.resnet110.__doc__


def test_a_new_network_gets_an_entry(monkeypatch):
    entry = registry.ModelEntry("preact_resnet26", "cifar", 26, "basic", "full_preact", "zero_pad", "test net")
    monkeypatch.setitem(registry.MODELS, "preact_resnet26", entry)
    hub = load_hubconf()
    assert "preact_resnet26" in entrypoints(hub)
    assert len(hub.preact_resnet26(width=0.25).units()) == 12


def test_hub_load_of_the_checkout_builds_networks():
    model = torch.hub.load(str(ROOT), "preact_resnet20", source="local", num_classes=100, width=0.25)
    assert isinstance(model, idresnet.networks.ResNet) and model.num_classes == 100
    reference = idresnet.create_model("preact_resnet20", num_classes=100, width=0.25)
    assert list(model.state_dict()) == list(reference.state_dict())
    gated = torch.hub.load(str(ROOT), "resnet110", source="local", pretrained=False, shortcut="exclusive_gate")
    assert gated.spec.shortcut == "exclusive_gate" and len(gated.units()) == 54
    with pytest.raises(UsageError, match="no published weights for resnet110; published: preact_resnet110, resnet20"):
        torch.hub.load(str(ROOT), "resnet110", source="local", pretrained=True)


def test_hub_load_pretrained_downloads_from_the_override(tmp_path, monkeypatch, capsys):
    """The real row of published.json: the repository's results/ file served over HTTP on
    127.0.0.1, downloaded into torch.hub's cache once, verified and loaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    row = published.published("preact_resnet110")
    with Server(ROOT) as server:
        monkeypatch.setenv(published.ENV_URL, server.url + "/good")
        model = torch.hub.load(str(ROOT), "preact_resnet110", source="local", pretrained=True, progress=False)
        cached = tmp_path / "torch" / "hub" / "checkpoints" / row.file
        assert published.published_file("preact_resnet110") == cached  # the second time, from the cache
        assert server.hits == {f"/good/{row.path}": 1}
    assert cached.read_bytes() == (ROOT / row.path).read_bytes()
    state, _ = load_weights(ROOT / row.path)  # float16 tensors, loaded into a float32 network
    assert all(torch.equal(v, state[k].to(v.dtype)) for k, v in model.state_dict().items())
    assert model.pretrained_cfg["classes"][:2] == ["airplane", "automobile"] and not model.training
    assert "downloading" not in capsys.readouterr().err  # progress=False
