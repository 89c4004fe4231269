"""Dataset fingerprints (the content, not the place) and finding a moved dataset."""

import json
import shutil

from databuild import image_folder, imagenet_folder, write_image

from idresnet.data import fingerprint, load_dataset, load_imagenet, locate
from idresnet.data.identity import LOCATE_LEVELS


def test_in_memory_fingerprint(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=(4, 2))
    first = fingerprint(load_dataset("folder", root))
    assert json.loads(json.dumps(first)) == first
    assert first == {
        "dataset": "folder",
        "classes": ["ant", "bee", "cat"],
        "num_classes": 3,
        "train": 12,
        "test": 6,
        "image_shape": [32, 32, 3],
        "sha256": first["sha256"],
    }
    assert len(first["sha256"]) == 16 and int(first["sha256"], 16) >= 0
    assert fingerprint(load_dataset("folder", root)) == first  # again, from the cache
    moved = shutil.move(root, tmp_path / "elsewhere")
    assert fingerprint(load_dataset("folder", moved)) == first  # the place is not part of it

    write_image(moved / "train" / "bee" / "01.png", (21, 21, 22))  # one pixel value changed
    changed = fingerprint(load_dataset("folder", moved))
    assert changed["sha256"] != first["sha256"]
    assert {k: v for k, v in changed.items() if k != "sha256"} == {k: v for k, v in first.items() if k != "sha256"}


def test_subsets_and_other_datasets_differ():
    full = fingerprint(load_dataset("synthetic"))
    assert fingerprint(load_dataset("synthetic")) == full
    prints = [
        fingerprint(load_dataset("synthetic", seed=1)),
        fingerprint(load_dataset("synthetic", train_size=512)),
        fingerprint(load_dataset("synthetic", train_size=512, seed=0)),
        fingerprint(load_dataset("synthetic", test_size=100)),
    ]
    assert prints[1] == prints[2] and prints[1]["train"] == 512
    hashes = {full["sha256"], prints[0]["sha256"], prints[1]["sha256"], prints[3]["sha256"]}
    assert len(hashes) == 4
    ds = load_dataset("synthetic")
    ds.train_labels = ds.train_labels.copy()
    ds.train_labels[0] = (ds.train_labels[0] + 1) % 10  # one label changed
    assert fingerprint(ds)["sha256"] != full["sha256"]


def test_subset_seed_changes_the_fingerprint(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=(6, 2))
    for i in range(6):  # distinct images, so that different subsets have different pixels
        write_image(root / "train" / "ant" / f"{i:02d}.png", (i, 0, 0))
    a = fingerprint(load_dataset("folder", root, train_size=6, seed=0))
    b = fingerprint(load_dataset("folder", root, train_size=6, seed=1))
    assert a["train"] == b["train"] == 6 and a["sha256"] != b["sha256"]


def test_streamed_fingerprint_hashes_the_index_only(tmp_path):
    root = imagenet_folder(tmp_path / "in")
    first = fingerprint(load_imagenet(root))
    assert first["dataset"] == "imagenet" and first["image_shape"] is None
    assert (first["num_classes"], first["train"], first["test"]) == (3, 16, 6)
    some = sorted((root / "val").rglob("*.JPEG"))[0]
    some.write_bytes(b"other bytes")  # contents are not read
    assert fingerprint(load_imagenet(root)) == first
    moved = shutil.move(root, tmp_path / "moved" / "in")
    assert fingerprint(load_imagenet(moved)) == first
    assert fingerprint(load_imagenet(moved, train_size=9))["sha256"] != first["sha256"]
    cls = sorted((moved / "train").iterdir())
    victim = sorted(cls[1].iterdir())[-1]
    victim.rename(cls[2] / victim.name)  # one image moved to another class
    assert fingerprint(load_imagenet(moved))["sha256"] != first["sha256"]


def test_locate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "store" / "cifar.tar.gz"
    data.parent.mkdir()
    data.write_bytes(b"x")
    assert locate(data, []) == data  # where it was recorded
    recorded = "/gone/elsewhere/cifar.tar.gz"
    assert locate(recorded, []) is None
    run = tmp_path / "store" / "runs" / "a" / "b"
    run.mkdir(parents=True)
    assert locate(recorded, [run]) == data  # three levels above the run folder
    deep = run / "c" / "d"
    deep.mkdir(parents=True)
    assert LOCATE_LEVELS == 3 and locate(recorded, [deep]) is None  # five levels: too far
    here = tmp_path / "cifar.tar.gz"
    here.write_bytes(b"y")
    assert locate(recorded, [run]) == here  # the current folder first
    assert locate("/gone/store", [tmp_path / "x"]).samefile(tmp_path / "store")  # a folder too
