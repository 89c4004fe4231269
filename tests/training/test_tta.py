"""Test-time augmentation (training/tta.py): flip and ten-crop averaging, in train's final
evaluation and ``idresnet eval``, always under names of their own."""

import json
import warnings

import pytest
import torch
from torch import nn
from trainhelpers import run_cli, tiny_args

from idresnet.cli.evaluate import TTA_CHOICES
from idresnet.data import CorruptImageWarning, DeviceLoader
from idresnet.data.transforms import TenCrop
from idresnet.training import train
from idresnet.training.evaluation import evaluate
from idresnet.training.metrics import read_metrics, run_columns
from idresnet.training.tta import TTA_METHODS, flip_average, ten_crop_average
from idresnet.weights import load_weights


class MirrorSymmetric(nn.Module):
    """A convolution whose kernel is its own mirror, then global average pooling: the logits
    of an image and of its mirror are equal (up to the order of float additions)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_((self.conv.weight + self.conv.weight.flip(3)) / 2)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


class LeftOrRight(nn.Module):
    """Logits [3, 0, -20] where an image's left half is the brighter, else [0, 4, 4]: the
    mean of these logits picks class 1, the mean of their softmax class 0."""

    def forward(self, x):
        w = x.shape[3]
        left = (x[..., : w // 2].mean((1, 2, 3)) > x[..., w // 2 :].mean((1, 2, 3)))[:, None]
        return torch.where(left, torch.tensor([3.0, 0.0, -20.0]), torch.tensor([0.0, 4.0, 4.0]))


def loader(images, labels):
    return DeviceLoader(images, labels, batch_size=4, train=False)


def test_flip_averaging_changes_nothing_for_a_mirror_symmetric_model():
    torch.manual_seed(1)
    x = torch.randn(6, 3, 8, 8)
    model = MirrorSymmetric()
    assert torch.allclose(flip_average(model, x), model(x), atol=1e-6)
    assert not torch.allclose(model(x[..., :4]), model(x[..., 4:]), atol=1e-3)  # the model does see the image


def test_flip_averages_the_logits_of_the_image_and_its_mirror():
    images = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    images[:2, :, :4] = 200  # bright left half: [3, 0, -20] as it is, [0, 4, 4] mirrored
    images[2:, :, 4:] = 200  # bright right half: the other way round
    labels = torch.tensor([1, 1, 0, 0])
    model = LeftOrRight()
    x = next(iter(loader(images, labels).epoch(0)))[0]
    assert torch.equal(flip_average(model, x), torch.tensor([[1.5, 2.0, -8.0]] * 4))
    plain = evaluate(model, loader(images, labels), device="cpu")
    flipped = evaluate(model, loader(images, labels), device="cpu", predict=flip_average)
    assert plain["error"] == 100.0  # class 0 for the first two, class 1 for the others
    assert flipped["error"] == 50.0  # class 1 for all: the mean logits (the mean softmax would pick class 0)
    mean = torch.tensor([[1.5, 2.0, -8.0]] * 4)
    assert flipped["loss"] == pytest.approx(nn.functional.cross_entropy(mean, labels).item(), rel=1e-6)


def test_ten_crop_averages_each_images_ten_consecutive_views():
    logits = torch.arange(2 * 10 * 3, dtype=torch.float32).view(20, 3)  # view v of image i: row 10 i + v
    got = ten_crop_average(lambda x: x, logits)
    assert torch.equal(got, torch.stack([logits[:10].mean(0), logits[10:].mean(0)]))


def test_the_cli_offers_the_methods_of_the_library():
    assert TTA_CHOICES == TTA_METHODS


def test_a_flip_run_keeps_its_single_crop_result_and_adds_the_tta_under_its_name(tiny):
    plain = train(tiny("plain"))
    tta = train(tiny("tta", tta="flip"))
    rows = read_metrics(tta.run_dir / "metrics.csv")
    assert list(rows[0]) == list(run_columns(tta="flip"))
    assert [int(r["iteration"]) for r in rows if r["test_error_flip"]] == [24]  # the final evaluation only
    assert [r["test_error"] for r in rows] == [r["test_error"] for r in read_metrics(plain.run_dir / "metrics.csv")]
    a, _ = load_weights(plain.run_dir / "weights.safetensors")
    b, _ = load_weights(tta.run_dir / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the evaluation changes nothing of the run
    status = json.loads((tta.run_dir / "status.json").read_text())
    assert tta.final_test_error == plain.final_test_error == status["final_test_error"]
    assert status["final_tta"]["method"] == "flip" and "not the paper's" in status["final_tta"]["protocol"]
    assert status["final_tta"]["top1"] == pytest.approx(float(rows[-1]["test_error_flip"]), abs=1e-3)
    assert tta.final_tta == status["final_tta"] and plain.final_tta is None
    assert "final_tta" not in json.loads((plain.run_dir / "status.json").read_text())


def test_eval_tta_flag_reports_the_tta_beside_the_single_crop(tiny, capsys):
    from idresnet.cli.main import main

    run = train(tiny("tta", tta="flip")).run_dir
    status = json.loads((run / "status.json").read_text())
    capsys.readouterr()
    assert main(["eval", "--weights", str(run), "--json", "--tta", "flip"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["error"] == pytest.approx(status["final_test_error"], abs=1e-6)  # the single crop's, as ever
    assert res["tta"]["method"] == "flip" and res["tta"]["error"] == pytest.approx(status["final_tta"]["top1"])
    assert main(["eval", "--weights", str(run), "--json"]) == 0
    assert "tta" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", "--weights", str(run), "--tta", "flip"]) == 0
    text = capsys.readouterr().out
    assert "with flip TTA: top-1 error" in text and "not the paper's single-crop protocol" in text


@pytest.mark.parametrize(
    "argv, text",
    [
        (["eval", "--weights", "{run}", "--tta", "flop"], "argument --tta: invalid choice: 'flop'"),
        (["eval", "--weights", "{run}", "--tta", "tencrop"], "tta 'tencrop' needs the streamed imagenet dataset"),
        (["train", *tiny_args(), "--tta", "tencrop", "--out", "{tmp}/t"], "valid for synthetic: none, flip"),
        (["train", *tiny_args(), "--tta", "ten", "--out", "{tmp}/t"], "unknown tta 'ten'; valid: none, flip, tencrop"),
    ],
)
def test_bad_tta_values_are_one_line(tmp_path_factory, tmp_path, argv, text):
    run = tmp_path_factory.getbasetemp() / "tta-errors-run"
    if not (run / "weights.safetensors").is_file():
        assert run_cli("train", *tiny_args(iterations=2, lr_milestones=[1], warmup_iters=0, eval_interval=2),
                       "--out", str(run)).returncode == 0  # fmt: skip
    proc = run_cli(*(a.format(run=run, tmp=tmp_path) for a in argv))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and text in lines[0], proc.stderr


def test_an_imagenet_run_with_a_validation_split_and_ten_crops(tiny_imagenet, capsys):
    """The streamed path: the validation split's columns at both crops, the test set's and
    the ten-crop's at the end, every one under its own name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        result = train(tiny_imagenet(epochs=None, iterations=6, eval_interval=3, val_split=3, tta="tencrop"))
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert list(rows[0]) == list(run_columns(val=True, tta="tencrop", eval_crops=[32, 48]))
    assert {"val_error_48", "test_error_48", "test_error_tencrop", "test_error_48_tencrop"} <= set(rows[0])
    assert [int(r["iteration"]) for r in rows if r["val_error_48"]] == [3, 6]
    assert [int(r["iteration"]) for r in rows if r["test_error"] or r["test_error_48_tencrop"]] == [6]
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["evaluated_on"] == "val" and set(status["final_tta"]["crops"]) == {"32", "48"}
    assert status["final_tta"]["crops"]["48"]["top1"] == pytest.approx(float(rows[-1]["test_error_48_tencrop"]))
    assert status["final_test_errors"]["32"]["top1"] == pytest.approx(status["final_test_error"])
    assert result.final_tta == status["final_tta"] and result.final_tta["method"] == "tencrop"
    from idresnet.cli.main import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        assert main(["eval", "--weights", str(result.run_dir), "--json", "--tta", "tencrop", "--workers", "0"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["crops"]["32"]["error"] == pytest.approx(status["final_test_error"])  # single crop, as ever
    for crop in ("32", "48"):  # eval's ten crops are the run's final ones
        assert res["tta"]["crops"][crop]["error"] == pytest.approx(status["final_tta"]["crops"][crop]["top1"])


def test_a_ten_crop_loader_gives_ten_consecutive_views_per_image(imagenet_data):
    from idresnet.data import load_imagenet
    from idresnet.training.rundata import crop_loaders

    folder = load_imagenet(imagenet_data)
    args = (folder.val_files, folder.val_labels, [32], [37])
    (ten,) = crop_loaders(*args, batch_size=2, transform=TenCrop).values()
    (one,) = crop_loaders(*args, batch_size=2).values()
    (x, y), (x1, y1) = next(iter(ten.epoch(0))), next(iter(one.epoch(0)))
    assert x.shape == (20, 3, 32, 32) and torch.equal(y, y1) and len(y) == 2
    assert torch.equal(x[0], x1[0]) and torch.equal(x[10], x1[1])  # each image's first view: the single crop
    assert torch.equal(x[5], x1[0].flip(2))  # its sixth: the centre mirrored
