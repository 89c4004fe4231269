"""ImageDataset, synthetic data, balanced subsets, load_dataset arguments."""

from pathlib import Path

import numpy as np
import pytest
import torch
from databuild import cifar_batches, write_cifar_archive

from idresnet.data import DATASETS, DeviceLoader, ImageDataset, load_dataset
from idresnet.errors import UsageError

REAL = Path("/work/shared/datasets/cifar10-jpeg.tar.gz")


def test_datasets_and_unknown_name():
    assert DATASETS == ("cifar10", "cifar100", "folder", "synthetic")
    with pytest.raises(UsageError, match="cifar10, cifar100, folder, synthetic"):
        load_dataset("mnist")
    with pytest.raises(UsageError, match="takes no data path"):
        load_dataset("synthetic", "x")
    with pytest.raises(UsageError, match="needs a data path"):
        load_dataset("folder")
    with pytest.raises(UsageError, match="label_set"):
        load_dataset("cifar10", "x", label_set="coarse")


def test_synthetic_shapes_and_determinism():
    ds = load_dataset("synthetic")
    assert isinstance(ds, ImageDataset) and ds.name == "synthetic" and ds.num_classes == 10
    assert ds.train_images.shape == (1024, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (256, 32, 32, 3) and ds.test_labels.dtype == np.int64
    assert np.bincount(ds.train_labels).tolist() == [103] * 4 + [102] * 6
    again = load_dataset("synthetic")
    assert np.array_equal(ds.train_images, again.train_images)
    other = load_dataset("synthetic", seed=1, train_size=100, test_size=50)
    assert other.train_images.shape[0] == 100 and other.test_images.shape[0] == 50
    assert not np.array_equal(other.train_images, ds.train_images[:100])


def test_synthetic_is_learnable():
    torch.manual_seed(0)
    ds = load_dataset("synthetic")
    mean, std = ds.channel_stats()
    loader = DeviceLoader(ds.train_images, ds.train_labels, batch_size=64, train=True, mean=mean, std=std)
    model = torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Flatten(), torch.nn.Linear(48, 10))
    losses = []
    for epoch in range(3):  # plain gradient descent (torch.optim's first import is slow)
        for x, y in loader.epoch(epoch):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.5 * p.grad
            losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_channel_stats_and_pixel_mean():
    ds = load_dataset("synthetic", train_size=300)
    x = ds.train_images.astype(np.float64) / 255
    mean, std = ds.channel_stats()
    assert np.allclose(mean, x.mean(axis=(0, 1, 2))) and np.allclose(std, x.std(axis=(0, 1, 2)))
    pm = ds.pixel_mean()
    assert pm.dtype == np.float32 and pm.shape == (32, 32, 3)
    assert np.allclose(pm, x.mean(axis=0), atol=1e-6)


def test_balanced_subsets(tmp_path):
    archive = write_cifar_archive(tmp_path / "c.tar.gz", cifar_batches(per_batch=40))
    full = load_dataset("cifar10", archive)
    part = load_dataset("cifar10", archive, train_size=45, test_size=10, seed=3)
    counts = np.bincount(part.train_labels, minlength=10)
    assert np.bincount(full.train_labels).min() >= 5  # every class can give its share
    assert counts.sum() == 45 and counts.max() - counts.min() <= 1
    assert "subset" in part.description and part.test_images.shape[0] == 10
    same = load_dataset("cifar10", archive, train_size=45, test_size=10, seed=3)
    assert np.array_equal(same.train_images, part.train_images)
    other = load_dataset("cifar10", archive, train_size=45, seed=4)
    assert not np.array_equal(other.train_labels, part.train_labels) or not np.array_equal(
        other.train_images, part.train_images
    )
    with pytest.raises(UsageError, match="train_size 1000"):
        load_dataset("cifar10", archive, train_size=1000)


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="cifar10-jpeg.tar.gz not present")
def test_real_cifar10_jpeg(tmp_path):
    ds = load_dataset("cifar10", REAL, cache_dir=tmp_path / "cache")
    assert ds.train_images.shape == (50000, 32, 32, 3)
    assert ds.test_images.shape == (10000, 32, 32, 3)
    assert ds.num_classes == 10 and ds.classes[0] == "airplane"
    assert np.bincount(ds.train_labels).tolist() == [5000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.description.startswith("CIFAR-10 (JPEG q75 copy, image folder ")
    mean, _std = ds.channel_stats()
    assert np.allclose(mean, (0.4914, 0.4822, 0.4465), atol=0.01)  # the official means
    warm = load_dataset("cifar10", REAL, cache_dir=tmp_path / "cache")
    assert np.array_equal(warm.test_images, ds.test_images)
