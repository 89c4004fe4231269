"""A run resolves its model once (issue #24) and records it in canonical names; run folders
and weights of older versions, which recorded what was given (``placement: e``), still
resume and load."""

import yaml
from trainhelpers import interrupt_at, same_weights

import idresnet
from idresnet.cli.main import main
from idresnet.training import train
from idresnet.weights import load_checkpoint, load_weights


def count_calls(monkeypatch, names) -> dict:
    """Count the calls of the registry's functions ``names`` wherever a module bound them."""
    import sys

    from idresnet.networks import cifar, registry, size

    homes = {"resolve_model": registry, "units_per_stage": cifar, "footprint": size}
    counts = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(homes[name], name)

        def counted(*args, _name=name, _original=original, **kw):
            counts[_name] += 1
            return _original(*args, **kw)

        for module in [m for k, m in sys.modules.items() if k.startswith("idresnet")]:
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)
    return counts


def test_a_run_resolves_its_model_once(tiny, monkeypatch):
    """Before issue #24 a run resolved its model options 4 times, derived the units per
    stage 7 times and estimated the network's size twice."""
    counts = count_calls(monkeypatch, ("resolve_model", "units_per_stage", "footprint"))
    cfg = tiny()
    assert counts == {"resolve_model": 1, "units_per_stage": 1, "footprint": 0}  # when the config is checked
    assert train(cfg).status in ("finished", "failed")
    assert counts == {"resolve_model": 1, "units_per_stage": 1, "footprint": 1}  # + the memory check


def test_the_records_hold_canonical_names(tiny, monkeypatch):
    interrupt_at(monkeypatch, 8)  # a checkpoint, and no final weights yet
    cfg = tiny(model="resnet20", model_kwargs={"width": 0.25, "placement": "e"}, checkpoint_interval=4)
    assert cfg.model_kwargs == {"width": 0.25, "placement": "full_preact"}
    run = train(cfg).run_dir
    monkeypatch.undo()
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["model_kwargs"] == {"width": 0.25, "placement": "full_preact"}
    assert recorded["run_info"]["model"]["placement"] == "full_preact"
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["meta"]["model_kwargs"]["placement"] == "full_preact"
    train(tiny(model="resnet20", model_kwargs={"width": 0.25, "placement": "full_preact"}, resume=True))
    assert load_weights(run / "weights.safetensors")[1]["model_kwargs"]["placement"] == "full_preact"


def test_an_old_run_folder_that_recorded_a_letter_resumes(tiny, monkeypatch):
    options = {"width": 0.25, "placement": "full_preact"}
    whole = train(tiny("whole", model="resnet20", model_kwargs=options)).run_dir
    interrupt_at(monkeypatch, 11)
    run = train(tiny("old", model="resnet20", model_kwargs=options)).run_dir
    monkeypatch.undo()
    old = yaml.safe_load((run / "config.yaml").read_text())  # as idresnet 0.1 wrote it: the letter given
    old["model_kwargs"] = {"width": 0.25, "placement": "e"}
    old["run_info"]["model"]["placement"] = "full_preact"  # run_info always held the name
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert main(["train", "--resume", "--out", str(run)]) in (0, 1)  # finished or failed: the run ended
    assert same_weights(whole, run)
    assert yaml.safe_load((run / "config.yaml").read_text())["model_kwargs"]["placement"] == "full_preact"


def test_old_weights_that_recorded_a_letter_load(tmp_path):
    from idresnet.weights import WeightsRecord, save_weights

    net = idresnet.create_model("resnet20", width=0.25, placement="e")
    path = tmp_path / "old.safetensors"
    save_weights(
        path, net.state_dict(), WeightsRecord(model="resnet20", model_kwargs={"width": 0.25, "placement": "e"})
    )
    model = idresnet.create_model("resnet20", pretrained=path, placement="full_preact")
    assert model.spec.placement == "full_preact"
