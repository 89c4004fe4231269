"""Image folders (directories and tarballs) and hostile tarballs."""

import io
import tarfile

import numpy as np
import pytest
from databuild import CIFAR10, image_folder, tar_dir, write_image

from idresnet.data import folder, load_dataset
from idresnet.data.safetar import safe_extract
from idresnet.errors import DatasetError


def test_sorted_classes_and_pixels(tmp_path):
    root = image_folder(tmp_path / "imgs")
    ds = load_dataset("folder", root)
    assert ds.classes == ["ant", "bee", "cat"]
    assert ds.train_images.shape == (9, 32, 32, 3) and ds.test_images.shape == (6, 32, 32, 3)
    assert list(ds.train_labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # class index k was painted 10*(k+1): PNG is lossless
    assert np.all(ds.train_images[:, 0, 0, 0] == 10 * (ds.train_labels + 1))
    assert ds.train_images[0, 5, 5, 2] == 12
    assert "image folder" in ds.description and str(root) in ds.description


def test_val_split_jpeg_and_other_sizes(tmp_path):
    root = image_folder(tmp_path / "imgs", splits=("train", "val"), size=(20, 24))
    write_image(root / "train" / "ant" / "extra.jpg", (200, 10, 10), (20, 24))
    (root / "train" / "ant" / "notes.txt").write_text("ignored")
    (root / "train" / "ant" / ".hidden.png").write_bytes(b"ignored")
    ds = load_dataset("folder", root)
    assert ds.train_images.shape == (10, 20, 24, 3) and len(ds.test_labels) == 6


def test_tarballs_match_directory(tmp_path):
    root = image_folder(tmp_path / "imgs")
    direct = load_dataset("folder", root)
    for arcname in ("", "wrapped"):
        tarball = tar_dir(root, tmp_path / f"imgs{arcname}.tar.gz", arcname)
        ds = load_dataset("folder", tarball)
        assert ds.classes == direct.classes
        assert np.array_equal(ds.train_images, direct.train_images)
        assert np.array_equal(ds.test_labels, direct.test_labels)


def test_large_tarball_is_extracted_safely(tmp_path, monkeypatch, cache):
    from idresnet.data import load as load_module

    monkeypatch.setattr(load_module, "TAR_IN_MEMORY", 0)
    root = image_folder(tmp_path / "imgs")
    ds = load_dataset("folder", tar_dir(root, tmp_path / "imgs.tgz", "top"))
    assert ds.classes == ["ant", "bee", "cat"]
    assert len(list((cache / "extracted").iterdir())) == 1


def test_a_changed_tarball_replaces_its_stale_extraction(tmp_path, monkeypatch, cache):
    import os

    from idresnet.data import load as load_module

    monkeypatch.setattr(load_module, "TAR_IN_MEMORY", 0)
    tarball = tar_dir(image_folder(tmp_path / "imgs"), tmp_path / "imgs.tgz", "top")
    load_dataset("folder", tarball)
    first = list((cache / "extracted").iterdir())
    os.utime(tarball, ns=(1, 1))  # a changed source (another mtime): a new key
    load_dataset("folder", tarball)
    second = list((cache / "extracted").iterdir())
    assert len(first) == len(second) == 1 and first != second


def test_progress_lines_without_a_terminal(tmp_path, monkeypatch, capsys):
    from idresnet.data import load as load_module

    monkeypatch.setattr(load_module, "TAR_IN_MEMORY", 0)
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "0")
    root = image_folder(tmp_path / "imgs")
    load_dataset("folder", tar_dir(root, tmp_path / "imgs.tgz"))
    err = capsys.readouterr().err.splitlines()
    assert "extracting imgs.tgz: 0 file (0:00)" in err and "decoding test: 0/6 img (0:00)" in err
    assert any(line.startswith("extracting imgs.tgz: 15 file (") for line in err)
    assert any(line.startswith("decoding train: 9/9 img (") for line in err)


@pytest.mark.parametrize("as_tar", [False, True])
@pytest.mark.parametrize(
    "damage,pattern",
    [
        ("missing class", r"class 'cat' is in train/ but missing from test/"),
        ("unreadable", r"bee/01\.png: unreadable image"),
        ("empty split", r"test: empty split"),
        ("empty class", r"train/ant: no images in this class folder"),
        ("no test split", r"no test/ or val/ folder"),
        ("size", r"cat/02\.png: image size 16x16 differs from 32x32"),
    ],
)
def test_layout_errors(tmp_path, damage, pattern, as_tar):
    root = image_folder(tmp_path / "imgs")
    if damage == "missing class":
        for f in (root / "test" / "cat").iterdir():
            f.unlink()
        (root / "test" / "cat").rmdir()
    elif damage == "unreadable":
        (root / "train" / "bee" / "01.png").write_bytes(b"\x89PNG not really")
    elif damage == "empty split":
        for cls in ("ant", "bee", "cat"):
            for f in (root / "test" / cls).iterdir():
                f.unlink()
    elif damage == "empty class":
        for f in (root / "train" / "ant").iterdir():
            f.unlink()
    elif damage == "no test split":
        (root / "test").rename(root / "testing")
    elif damage == "size":
        write_image(root / "train" / "cat" / "02.png", (1, 2, 3), (16, 16))
    source = tar_dir(root, tmp_path / "imgs.tar") if as_tar else root
    with pytest.raises(DatasetError, match=pattern) as exc:
        load_dataset("folder", source)
    assert str(source) in str(exc.value) and "\n" not in str(exc.value)


def test_no_train_folder(tmp_path):
    (tmp_path / "x" / "a").mkdir(parents=True)
    (tmp_path / "x" / "b").mkdir()
    with pytest.raises(DatasetError, match="no train/ folder"):
        load_dataset("folder", tmp_path / "x")


def test_cifar10_from_image_folder(tmp_path):
    root = image_folder(tmp_path / "c10", classes=CIFAR10, per_class=(2, 1))
    ds = load_dataset("cifar10", root)
    assert ds.classes == list(CIFAR10) and ds.train_images.shape == (20, 32, 32, 3)
    assert ds.description.startswith("CIFAR-10 (image folder")
    bad = image_folder(tmp_path / "bad", classes=CIFAR10[:9] + ("lorry",), per_class=(1, 1))
    with pytest.raises(DatasetError, match="not the 10 CIFAR-10 classes"):
        load_dataset("cifar10", bad)
    small = image_folder(tmp_path / "small", classes=CIFAR10, per_class=(1, 1), size=(8, 8))
    with pytest.raises(DatasetError, match="cifar10 images are 32x32"):
        load_dataset("cifar10", small)


def test_jpeg_quality_in_description(tmp_path):
    root = tmp_path / "c10"
    for split in ("train", "test"):
        for cls in CIFAR10:
            arr = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
            (root / split / cls).mkdir(parents=True)
            from PIL import Image

            Image.fromarray(arr).save(root / split / cls / "0.jpg", quality=75)
    ds = load_dataset("cifar10", tar_dir(root, tmp_path / "c10.tar.gz"))
    assert ds.description.startswith("CIFAR-10 (JPEG q75 copy, image folder ")


def test_worker_pool_decoding(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "imgs", per_class=(12, 2))
    monkeypatch.setattr(folder, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(folder, "CHUNK", 5)
    index = folder.scan_folder(root)
    pooled = folder.decode_files(index.train_files, (32, 32), workers=2)
    serial = folder.decode_files(index.train_files, (32, 32), workers=1)
    assert np.array_equal(pooled, serial) and pooled.shape[0] == 36
    (root / "train" / "cat" / "07.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"cat/07\.png: unreadable"):
        folder.decode_files(index.train_files, (32, 32), workers=2)


def _hostile_tar(path, kind):
    with tarfile.open(path, "w") as tar:

        def add(name, data=b"x", **attrs):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in attrs.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)

        add("train/a/0.png")
        if kind == "dotdot":
            add("train/../../evil.png")
        elif kind == "absolute":
            add(str(path.parent / "evil.png"))
        elif kind == "symlink":
            add("train/a/evil.png", type=tarfile.SYMTYPE, linkname="/etc/passwd", size=0)
        elif kind == "hardlink":
            add("train/a/evil.png", type=tarfile.LNKTYPE, linkname="/etc/passwd", size=0)
        elif kind == "device":
            add("train/a/evil.png", type=tarfile.CHRTYPE, devmajor=1, devminor=3, size=0)
        elif kind == "fifo":
            add("train/a/evil.png", type=tarfile.FIFOTYPE, size=0)
    return path


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("dotdot", "escapes"),
        ("absolute", "absolute"),
        ("symlink", "link"),
        ("hardlink", "link"),
        ("device", "device"),
        ("fifo", "device"),
    ],
)
def test_hostile_tarball_members_refused(tmp_path, kind, reason):
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    tarball = _hostile_tar(work / "evil.tar", kind)
    with pytest.raises(DatasetError, match=f"evil.png.*refused.*{reason}") as exc:
        safe_extract(tarball, work / "out")
    assert str(tarball) in str(exc.value)
    assert not (work / "out").exists() and not list(work.glob(".extract-*"))
    with pytest.raises(DatasetError, match="refused"):
        load_dataset("folder", tarball)
    assert not list(tmp_path.rglob("evil.png"))
