"""``idresnet predict``: top-k classes with names and probabilities at the weights' recorded
crop and normalisation, for files, folders and globs; one-line errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_cli import exit_code, one_error_line

import idresnet
from idresnet.cli.main import main
from idresnet.networks.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from idresnet.pretrained.record import make_record
from idresnet.weights import save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A small ImageNet net with random weights and a converted-weights record."""
    torch.manual_seed(0)
    net = idresnet.create_model("imagenet_preact_resnet18", width=0.0625)
    for m in net.modules():  # spread the logits so that the top classes are clear
        if isinstance(m, torch.nn.Linear):
            m.bias.data.normal_(0, 3)
    path = tmp_path_factory.mktemp("predict") / "w.safetensors"
    record = make_record(
        "imagenet_preact_resnet18", {"width": 0.0625}, "imagenet", IMAGENET_MEAN, IMAGENET_STD, {"format": "test"}, 1000
    )
    save_weights(path, net.state_dict(), record)
    return path, net.eval()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(300, 260), (260, 400), (256, 256)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def expected(net, path):
    """Top-5 by hand: shorter side to 256 (bilinear), central 224, (x/255 - mean) / std."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = 256 / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.BILINEAR)
    left, top = (img.size[0] - 224) // 2, (img.size[1] - 224) // 2
    x = np.asarray(img.crop((left, top, left + 224, top + 224)), np.float32) / 255
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    with torch.no_grad():
        p = net(torch.from_numpy(x).permute(2, 0, 1)[None]).softmax(1)[0]
    return p


def test_folder_json(weights, images, capsys):
    path, net = weights
    assert main(["predict", str(images), "--weights", str(path), "--json", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "imagenet_preact_resnet18" and len(out["predictions"]) == 3
    names = idresnet.pretrained.record.imagenet_classes()
    for pred in out["predictions"]:
        want = expected(net, pred["image"])
        top = pred["top"]
        assert [t["index"] for t in top] == want.topk(3).indices.tolist()
        assert np.allclose([t["probability"] for t in top], want.topk(3).values.tolist(), atol=2e-3)
        assert [t["id"] for t in top] == [names[0][t["index"]] for t in top]
        assert [t["class"] for t in top] == [names[1][t["index"]] for t in top]


def test_glob_and_file_text(weights, images, capsys):
    path, _ = weights
    assert main(["predict", str(images / "img0.png"), str(images / "img*.png"), "--weights", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith(str(images / "img0.png") + ": ")
    assert lines[0].count("%") == 5 and lines[0] == lines[1]


@pytest.mark.parametrize(
    "what,message", [("missing.png", "no such file"), ("notes.txt", "cannot read image"), ("empty", "no images in")]
)
def test_bad_images_are_one_line(weights, images, tmp_path, capsys, what, message):
    (images.parent / "empty").mkdir(exist_ok=True)
    target = images / what if what != "empty" else images.parent / "empty"
    assert exit_code(["predict", str(target), "--weights", str(weights[0])]) == 2
    assert message in one_error_line(capsys, "idresnet predict: error: ")


def test_recursive_glob_and_the_hint_for_nested_folders(tmp_path):
    from PIL import Image

    from idresnet.cli.predict import expand
    from idresnet.errors import UsageError

    nested = tmp_path / "photos" / "cats"
    nested.mkdir(parents=True)
    for name in ("a.png", "b.jpg"):
        Image.new("RGB", (8, 8)).save(nested / name)
    assert [p.name for p in expand([str(tmp_path / "photos" / "**" / "*.*")])] == ["a.png", "b.jpg"]
    with pytest.raises(UsageError, match=r"not searched recursively: try '.*photos/\*\*/\*\.jpg'"):
        expand([str(tmp_path / "photos")])
