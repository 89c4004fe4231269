"""A run with a validation split (val_split): what it trains and evaluates on, what it
records, resuming, and its errors."""

import json

import numpy as np
import pytest
import torch
import yaml
from trainhelpers import TINY, interrupt_at, run_cli, tiny_args, without_timing

from idresnet.data import load_dataset
from idresnet.data.validation import hold_out
from idresnet.errors import ConfigError
from idresnet.training import TrainConfig, train
from idresnet.training.distributed import DistInfo
from idresnet.training.metrics import read_metrics, run_columns
from idresnet.training.rundata import build_data
from idresnet.training.summary import summarize
from idresnet.weights import load_weights

VAL = 40  # 4 of each of the 10 synthetic classes, out of TINY's 256 training images


def status_of(run):
    return json.loads((run / "status.json").read_text())


def test_the_evaluations_are_on_the_validation_split_and_the_test_set_comes_once(tiny):
    result = train(tiny(val_split=VAL))
    run = result.run_dir
    rows = read_metrics(run / "metrics.csv")
    assert list(rows[0]) == list(run_columns(val=True))
    assert list(rows[0])[5:9] == ["val_loss", "val_error", "test_loss", "test_error"]
    evaluated = [int(r["iteration"]) for r in rows if r["val_error"]]
    assert evaluated == [8, 16, 24] and [int(r["iteration"]) for r in rows if r["test_error"]] == [24]
    val_errors = [float(r["val_error"]) for r in rows if r["val_error"]]
    assert all(100 * round(e * VAL / 100) / VAL == pytest.approx(e, abs=1e-3) for e in val_errors)  # of 40 images
    status = status_of(run)
    assert status["evaluated_on"] == "val" and status["best_test_error"] is None
    assert status["best_val_error"] == pytest.approx(min(val_errors), abs=1e-3) == result.best_val_error
    assert status["best_iteration"] in evaluated
    assert status["final_val_error"] == pytest.approx(val_errors[-1], abs=1e-3) == result.final_val_error
    assert status["final_test_error"] == pytest.approx(float(rows[-1]["test_error"]), abs=1e-3)
    assert result.final_test_error == status["final_test_error"] and result.best_test_error is None
    info = yaml.safe_load((run / "config.yaml").read_text())
    assert info["val_split"] == VAL
    dataset = info["run_info"]["dataset"]
    assert (dataset["train_images"], dataset["val_images"], dataset["test_images"]) == (256 - VAL, VAL, 64)
    assert dataset["validation"]["per_class"] == 4 and "indices" not in dataset["validation"]
    assert "[validation: 40 training images held out, seed 0]" in dataset["description"]
    recorded = json.loads((run / "val_split.json").read_text())
    ds = load_dataset("synthetic", train_size=256, test_size=64, seed=0)
    assert recorded == hold_out(ds.train_labels, VAL, ds.classes, 0).record
    _, meta = load_weights(run / "weights.safetensors")
    assert meta["test_error"] == pytest.approx(status["final_test_error"])  # the weights' error is the test set's


def test_the_validation_images_are_not_trained_on(tiny):
    cfg = tiny(val_split=VAL)
    data = build_data(cfg, DistInfo(), torch.device("cpu"), channels_last=False)
    ds = load_dataset("synthetic", train_size=256, test_size=64, seed=0)
    pad = data.train_loader.pad
    trained = data.train_loader.images[:, :, pad:-pad, pad:-pad]  # what every training batch is cut from
    validated = data.val_loaders[None].images
    assert (len(trained), len(validated), data.val_count) == (256 - VAL, VAL, VAL)
    as_bytes = lambda images: {bytes(x.contiguous().numpy()) for x in images}  # noqa: E731
    trained, validated = as_bytes(trained), as_bytes(validated)
    assert not trained & validated  # disjoint
    assert trained | validated == {bytes(np.ascontiguousarray(x.transpose(2, 0, 1))) for x in ds.train_images}
    assert np.bincount(data.val_loaders[None].labels.numpy()).tolist() == [4] * 10
    assert not data.val_loaders[None].augment  # un-augmented, as the test set
    # the normalisation is of the images trained on, not of the held-out ones
    held = hold_out(ds.train_labels, VAL, ds.classes, 0)
    mean = ds.train_images[held.kept].reshape(-1, 3).mean(0) / 255
    assert data.norm["mean"] == pytest.approx(mean.tolist(), abs=1e-9)


def test_a_resumed_run_with_a_validation_split_is_bit_identical(tiny, monkeypatch):
    whole = train(tiny("whole", val_split=VAL))
    interrupt_at(monkeypatch, 11)  # between the evaluations at 8 and 16
    assert train(tiny("part", val_split=VAL)).status == "interrupted"
    monkeypatch.undo()
    done = train(tiny("part", val_split=VAL, resume=True))
    a, _ = load_weights(whole.run_dir / "weights.safetensors")
    b, _ = load_weights(done.run_dir / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert without_timing(whole.run_dir) == without_timing(done.run_dir)
    same = ("best_val_error", "best_iteration", "final_val_error", "final_test_error", "evaluated_on")
    assert {k: status_of(whole.run_dir)[k] for k in same} == {k: status_of(done.run_dir)[k] for k in same}
    assert (whole.run_dir / "val_split.json").read_bytes() == (done.run_dir / "val_split.json").read_bytes()


def test_a_resume_whose_recorded_split_differs_is_refused(tiny, monkeypatch, capsys):
    interrupt_at(monkeypatch, 5)
    part = train(tiny("part", val_split=VAL))
    monkeypatch.undo()
    path = part.run_dir / "val_split.json"
    record = json.loads(path.read_text())
    original = path.read_bytes()
    other = hold_out(np.asarray(load_dataset("synthetic", train_size=256, seed=0).train_labels), VAL, range(10), 7)
    path.write_text(json.dumps(other.record))  # the split of another seed
    with pytest.raises(ConfigError, match="the validation split recorded in .* is not the one drawn now") as err:
        train(tiny("part", val_split=VAL, resume=True))
    assert "\n" not in str(err.value)
    path.write_text(json.dumps({**record, "indices": record["indices"][:-1]}))  # edited: its digest no longer fits
    with pytest.raises(ConfigError, match="is not the one drawn now"):
        train(tiny("part", val_split=VAL, resume=True))
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="val_split.json is damaged"):
        train(tiny("part", val_split=VAL, resume=True))
    path.unlink()  # gone: drawn again from the seed (the data's fingerprint is checked), with a warning
    capsys.readouterr()
    assert train(tiny("part", val_split=VAL, resume=True)).status in ("finished", "failed")
    assert "val_split.json was missing: written again from the seed" in capsys.readouterr().err
    assert path.read_bytes() == original
    with pytest.raises(ConfigError, match="--resume cannot change val_split"):
        train(tiny("part", val_split=0, resume=True))


def test_the_split_does_not_change_the_rest_of_the_run(tiny):
    """The initial weights and the test set are the run's without a split: the split draws
    from a stream of its own."""
    plain, split = (TrainConfig(**{**TINY, "out": None, "val_split": v}) for v in (0, VAL))
    a = build_data(plain, DistInfo(), torch.device("cpu"), False)
    b = build_data(split, DistInfo(), torch.device("cpu"), False)
    assert torch.equal(a.test_loaders[None].images, b.test_loaders[None].images)
    assert a.fingerprint == b.fingerprint  # of the data given, before the split
    one = train(tiny("one", iterations=1, lr_milestones=None, warmup_iters=0, lr=0.0, weight_decay=0.0))
    two = train(tiny("two", iterations=1, lr_milestones=None, warmup_iters=0, lr=0.0, weight_decay=0.0, val_split=VAL))
    wa, _ = load_weights(one.run_dir / "weights.safetensors")
    wb, _ = load_weights(two.run_dir / "weights.safetensors")
    same = [k for k in wa if "running" not in k and "num_batches" not in k]  # lr 0: the initial weights
    assert same and all(torch.equal(wa[k], wb[k]) for k in same)


def test_runs_and_plots_say_which_set_each_number_is_on(tiny, capsys):
    from idresnet.analysis.curves import curves_figure, read_curves
    from idresnet.cli.main import main

    val = train(tiny("val", val_split=VAL)).run_dir
    test = train(tiny("test")).run_dir
    s = summarize(val)
    rows = read_metrics(val / "metrics.csv")
    assert (s["evaluated_on"], s["latest_error_at"]) == ("val", 24)
    assert s["latest_error"] == pytest.approx(float(rows[-1]["val_error"]))
    assert s["best_error"] == status_of(val)["best_val_error"] and s["final_test_error"] is not None
    plain = summarize(test)
    assert plain["evaluated_on"] == "test" and plain["best_error"] == plain["best_test_error"] is not None
    assert main(["runs", str(val), str(test)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert "error % (set, at)" in header and "best % (set)" in header and "final test %" in header
    listed = {line.split()[0]: line for line in lines}  # sorted by path: test, val
    assert "(val, 24)" in listed["val"] and "(val) " in listed["val"] and "(test, 24)" in listed["test"]
    fig = curves_figure({"val": read_curves(val), "test": read_curves(test)})
    error_ax = fig.axes[1]
    assert [t.get_text() for t in error_ax.get_legend().get_texts()] == ["val (val)", "test"]
    stars = [line for line in error_ax.lines if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [24]  # the val run's one test error, at the end
    assert "validation (val) error" in error_ax.get_ylabel()


@pytest.mark.parametrize(
    "value, text",
    [
        ("15", "invalid val_split 15: class-balanced, it must be a multiple of the 10 classes"),
        ("300", "invalid val_split 300: 30 images of each of the 10 classes, but class 'class"),
        ("-10", "invalid val_split -10: must be >= 0"),
        ("ten", "invalid val_split 'ten': expected an integer"),
    ],
)
def test_a_bad_split_is_one_line_before_training(tmp_path, value, text):
    out = tmp_path / "run"
    proc = run_cli("train", *tiny_args(), "--val-split", value, "--out", str(out))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (out / "metrics.csv").exists() and not (out / "checkpoints").exists()  # nothing trained


def test_reproduce_passes_the_split_to_every_run(tmp_path, capsys):
    from idresnet.cli.main import main

    out = tmp_path / "t1"
    argv = ["reproduce", "table1", "--scale", "smoke", "--dataset", "synthetic", "--rows", "original",
            "scaling_05_05", "--out", str(out), "--threads", "1", "--val-split", "10"]  # fmt: skip
    assert main(argv) == 0
    for row in ("original", "scaling_05_05"):
        run = out / row / "run0"
        assert yaml.safe_load((run / "config.yaml").read_text())["val_split"] == 10
        assert status_of(run)["evaluated_on"] == "val" and (run / "val_split.json").is_file()
    md = (out / "table1.md").read_text()
    assert "- evaluation: a validation split of 10 training images held out of every run" in md
    assert "--val-split 10" in md  # the command that made it
    assert main([*argv[:-1], "0"]) == 2  # the runs recorded their split: a resume cannot drop it
    assert "--resume cannot change val_split" in capsys.readouterr().err


def test_processes_that_drew_different_splits_stop_in_one_line(monkeypatch):
    from idresnet.training import distributed, validation

    record = {"sha256": "a" * 64}
    validation.check_ranks(record, DistInfo())  # one process: nothing to compare
    monkeypatch.setattr(distributed, "gather", lambda obj, dist: [obj, "b" * 64])  # rank 1's digest
    with pytest.raises(
        ConfigError, match=r"the processes drew different validation splits \(rank 0: aaaaaaaaaaaa, rank 1: bbbb"
    ):
        validation.check_ranks(record, DistInfo())
