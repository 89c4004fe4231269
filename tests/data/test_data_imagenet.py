"""ImageNet-layout folders streamed from disk: the index, its errors, the per-file dataset
and the StreamLoader (order, determinism, sharding, workers, damaged files)."""

import shutil
import tarfile
import warnings

import numpy as np
import pytest
import torch
from databuild import CIFAR_JPEG, WNIDS, cifar_jpeg_subset, imagenet_folder

from idresnet.data import CorruptImageWarning, FileDataset, StreamLoader, load_dataset, load_imagenet
from idresnet.data.imagenet import collate
from idresnet.data.transforms import CenterCrop, train_transform
from idresnet.errors import DatasetError, UsageError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return imagenet_folder(tmp_path_factory.mktemp("imagenet") / "data")


def loader(folder, train=True, batch=4, workers=0, rank=0, world=1, corrupt=True, seed=0, **kw):
    index = load_imagenet(folder)
    if not corrupt:
        keep = [i for i, f in enumerate(index.train_files) if b"corrupt" not in f]
        index.train_files, index.train_labels = index.train_files[keep], index.train_labels[keep]
    if train:
        data = FileDataset(index.train_files, index.train_labels, train_transform("scale", 32, (36, 64)), seed=seed)
    else:
        data = FileDataset(index.val_files, index.val_labels, CenterCrop(32, 37), random=False)
    return StreamLoader(
        data, batch_size=batch, train=train, workers=workers, rank=rank, world_size=world, seed=seed, **kw
    )


def batches(loader, epoch=0, start=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch, start_batch=start)]


def test_index_classes_labels_and_description(folder):
    index = load_imagenet(folder)
    assert index.classes == list(WNIDS) and index.num_classes == 3
    assert len(index.train_files) == 16 and len(index.val_files) == 6  # 3 x 5 + corrupt; 3 x 2
    assert index.train_labels.tolist() == [0] * 6 + [1] * 5 + [2] * 5
    assert index.train_files.dtype.kind == "S"  # one bytes array, shared by forked workers
    assert "3 classes, 16 train / 6 val images, streamed" in index.description
    sub = load_imagenet(folder, train_size=6, test_size=3, seed=1)
    assert np.bincount(sub.train_labels).tolist() == [2, 2, 2] and len(sub.val_labels) == 3
    assert "[subset: 6 train, 3 val, seed 1]" in sub.description


def test_layout_errors_are_one_line(tmp_path, folder):
    def error(path):
        with pytest.raises(DatasetError) as exc:
            load_imagenet(path)
        assert "\n" not in str(exc.value)
        return str(exc.value)

    assert "no such folder" in error(tmp_path / "nope")
    assert "needs --data DIR" in str(pytest.raises(DatasetError, load_imagenet, None).value)
    shutil.copytree(folder, tmp_path / "notrain")
    shutil.rmtree(tmp_path / "notrain" / "train")
    assert "no train/ folder" in error(tmp_path / "notrain")
    shutil.copytree(folder, tmp_path / "test")
    (tmp_path / "test" / "val").rename(tmp_path / "test" / "test")
    assert "no val/ folder" in (msg := error(tmp_path / "test")) and "link test/ to val/" in msg
    shutil.copytree(folder, tmp_path / "empty")
    (tmp_path / "empty" / "train" / "n09999999").mkdir()
    (tmp_path / "empty" / "val" / "n09999999").mkdir()
    msg = error(tmp_path / "empty")
    assert msg.endswith("train/n09999999: no images in this class folder")
    shutil.copytree(folder, tmp_path / "flat")
    for f in (tmp_path / "flat" / "val").rglob("*.JPEG"):
        f.rename(tmp_path / "flat" / "val" / f.name)
    for d in (tmp_path / "flat" / "val").iterdir():
        if d.is_dir():
            d.rmdir()
    assert "images but no class folders" in error(tmp_path / "flat")
    with tarfile.open(tmp_path / "x.tar", "w") as tar:
        tar.add(folder / "val", arcname="val")
    assert "not a folder" in error(tmp_path / "x.tar")


def test_load_dataset_says_imagenet_is_streamed():
    with pytest.raises(UsageError, match="streamed from disk"):
        load_dataset("imagenet", "/x")


def test_dataset_items_and_collate_drop_damaged_files(folder):
    index = load_imagenet(folder)
    data = FileDataset(index.train_files, index.train_labels, train_transform("rrc", 32), seed=0)
    bad = [i for i, f in enumerate(index.train_files) if b"corrupt" in f][0]
    assert bad == 0  # "corrupt.JPEG" sorts first
    x, label, reason = data[(1, 0)]
    assert x.shape == (32, 32, 3) and x.dtype == torch.uint8 and label == 0 and reason is None
    assert torch.equal(x, data[(1, 0)][0]) and not torch.equal(x, data[(1, 1)][0])
    none, label, reason = data[(bad, 0)]
    assert none is None and "corrupt.JPEG (UnidentifiedImageError" in reason and "\n" not in reason
    images, labels, skipped = collate([data[(1, 0)], data[(bad, 0)], data[(7, 0)]])
    assert images.shape == (2, 32, 32, 3) and labels.tolist() == [0, 1] and len(skipped) == 1
    assert collate([data[(bad, 0)]])[:2] == (None, None)


def test_batches_shapes_normalisation_and_channels_last(folder):
    ld = loader(folder, corrupt=False, channels_last=True)
    assert len(ld) == 3  # 15 images // 4, the remainder dropped
    out = batches(ld)
    x, y = out[0]
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert -2.2 < x.min() and x.max() < 2.7  # (x/255 - mean) / std with the ImageNet statistics
    ev = batches(loader(folder, train=False, batch=4))
    assert [len(b[1]) for b in ev] == [4, 2] and torch.cat([b[1] for b in ev]).tolist() == [0, 0, 1, 1, 2, 2]


def test_order_and_augmentation_are_functions_of_seed_and_epoch(folder):
    ld = loader(folder, corrupt=False)
    a, b = batches(ld, 0), batches(ld, 0)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    later = batches(ld, 0, start=1)  # resuming mid-epoch: the same batches after the first
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a[1:], later)) and len(later) == 2
    other = batches(ld, 1)
    assert not torch.equal(a[0][0], other[0][0])
    with pytest.raises(UsageError, match="start_batch 4 outside"):
        ld.epoch(0, start_batch=4)


def test_workers_give_the_same_batches(folder):
    zero = batches(loader(folder, corrupt=False, workers=0), 2)
    two = batches(loader(folder, corrupt=False, workers=2), 2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(zero, two))


def test_ranks_split_the_global_batch_of_one_process(folder):
    one = batches(loader(folder, corrupt=False, batch=4), 1)
    ranks = [batches(loader(folder, corrupt=False, batch=2, rank=r, world=2), 1) for r in (0, 1)]
    for step, (x, y) in enumerate(one):
        assert torch.equal(x, torch.cat([ranks[0][step][0], ranks[1][step][0]]))
        assert torch.equal(y, torch.cat([ranks[0][step][1], ranks[1][step][1]]))
    shards = [
        torch.cat([b[1] for b in batches(loader(folder, train=False, batch=2, rank=r, world=4))]) for r in range(4)
    ]
    assert [len(s) for s in shards] == [2, 2, 1, 1] and torch.cat(shards).tolist() == [0, 0, 1, 1, 2, 2]


def test_damaged_file_is_skipped_warned_and_counted(folder):
    index = load_imagenet(folder)
    data = FileDataset(index.train_files, index.train_labels, CenterCrop(32, 37), random=False)
    ld = StreamLoader(data, batch_size=16, train=False)  # every training file, in order
    with pytest.warns(CorruptImageWarning, match="skipped unreadable image .*corrupt.JPEG"):
        out = list(ld.epoch(0))
    assert len(out) == 1 and out[0][0].shape[0] == 15 and ld.skipped == 1
    train = loader(folder, batch=16, workers=1)  # one batch holding every file, decoded by a worker
    with pytest.warns(CorruptImageWarning):
        ((x, y),) = list(train.epoch(0))
    assert x.shape[0] == 15 and train.skipped == 1


def test_a_training_batch_of_only_damaged_files_is_an_error(tmp_path):
    root = imagenet_folder(tmp_path / "d", classes=("a", "b"), train=1, val=1)
    for f in (root / "train").rglob("*.JPEG"):
        f.write_bytes(b"garbage")
    ld = loader(root, batch=3)
    with pytest.warns(CorruptImageWarning), pytest.raises(DatasetError, match="every image of a training batch"):
        list(ld.epoch(0))


@pytest.mark.skipif(not CIFAR_JPEG.exists(), reason="no CIFAR-10 JPEG copy")
def test_real_jpegs_of_the_cifar10_copy_stream_upscaled(tmp_path):
    """A real-image check: 8 of the CIFAR-10 JPEG copy's images per class (32x32), as
    train/ and val/ (from its test/), through the paper's augmentation at a 48 crop."""
    index = load_imagenet(cifar_jpeg_subset(tmp_path / "cifar"))
    assert index.num_classes == 10 and len(index.train_files) == 80 and len(index.val_files) == 20
    data = FileDataset(index.train_files, index.train_labels, train_transform("scale", 48, (56, 96)))
    ld = StreamLoader(data, batch_size=16, train=True, workers=2)
    out = batches(ld)
    assert len(out) == 5 and out[0][0].shape == (16, 3, 48, 48) and ld.skipped == 0
    assert 0.3 < float(torch.cat([b[0] for b in out]).std()) < 2.0  # real, varied pixels
