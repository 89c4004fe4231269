"""DeviceLoader: augmentation, determinism, resume, DDP sharding, normalisation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from idresnet.data import DeviceLoader
from idresnet.data.loader import epoch_generator
from idresnet.errors import UsageError

H = W = 32


def coded_images(n):
    """Channel 0 encodes the row (7h+1), channel 1 the column (7w+1), channel 2 is 255."""
    img = np.zeros((n, H, W, 3), np.uint8)
    img[..., 0] = (7 * np.arange(H) + 1)[None, :, None]
    img[..., 1] = (7 * np.arange(W) + 1)[None, None, :]
    img[..., 2] = 255
    return img


def raw(x):
    """Undo mean 0 / std 1 normalisation: back to integer pixel values."""
    return torch.round(x * 255).to(torch.int64)


def reference_crop(img_chw, dy, dx, flip, pad=4):
    p = F.pad(img_chw, (pad, pad, pad, pad))
    out = p[:, pad + dy : pad + dy + H, pad + dx : pad + dx + W]
    return out.flip(-1) if flip else out


def test_crop_within_4_flip_half_and_matches_reference():
    n = 4096
    images = coded_images(n)
    loader = DeviceLoader(images, np.arange(n), batch_size=256, train=True, seed=3)
    shifts, flips = [], []
    for x, y in loader.epoch(0):
        v = raw(x)
        centre_r, centre_c = v[:, 0, 16, 16], v[:, 1, 16, 16]
        flip = v[:, 1, 16, 17] < centre_c
        dy = (centre_r - 1) // 7 - 16
        col = (centre_c - 1) // 7
        dx = torch.where(flip, col - 15, col - 16)
        assert bool(((dy.abs() <= 4) & (dx.abs() <= 4)).all())
        for i in range(0, len(v), 37):  # every element matches a per-image reference
            ref = reference_crop(
                torch.from_numpy(images[y[i]]).permute(2, 0, 1).long(), int(dy[i]), int(dx[i]), bool(flip[i])
            )
            assert torch.equal(v[i], ref)
        shifts += list(zip(dy.tolist(), dx.tolist()))
        flips += flip.tolist()
    assert {s for s, _ in shifts} == set(range(-4, 5)) == {s for _, s in shifts}
    assert abs(np.mean(flips) - 0.5) < 0.04


def decode_offsets(x):
    """(dy, dx, flip) of each image of a batch of coded images (mean 0, std 1)."""
    v = raw(x)
    centre_r, centre_c = v[:, 0, 16, 16], v[:, 1, 16, 16]
    flip = v[:, 1, 16, 17] < centre_c
    col = (centre_c - 1) // 7
    return (centre_r - 1) // 7 - 16, torch.where(flip, col - 15, col - 16), flip


@pytest.mark.parametrize("pixel", [False, True])
def test_augmented_normalisation_matches_reference(pixel):
    n = 64
    images = np.random.default_rng(4).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    pm = np.random.default_rng(5).uniform(0, 1, (H, W, 3)).astype(np.float32)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    norm = dict(pixel_mean=pm) if pixel else dict(mean=mean, std=std)
    coded = DeviceLoader(coded_images(n), np.arange(n), batch_size=n, train=True, seed=9)
    loader = DeviceLoader(images, np.arange(n), batch_size=n, train=True, seed=9, **norm)
    ((xc, yc),) = coded.epoch(2)
    ((x, y),) = loader.epoch(2)
    assert torch.equal(y, yc)
    dy, dx, flip = decode_offsets(xc)
    full = images / 255.0 - pm if pixel else (images / 255.0 - np.array(mean)) / np.array(std)
    full = torch.from_numpy(full).permute(0, 3, 1, 2).float()
    for i in range(n):
        ref = reference_crop(full[y[i]], int(dy[i]), int(dx[i]), bool(flip[i]))
        assert torch.allclose(x[i], ref, atol=1e-5)


def test_zero_padding_is_in_normalised_space():
    images = np.full((64, H, W, 3), 200, np.uint8)
    loader = DeviceLoader(images, np.zeros(64), batch_size=64, train=True, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    ((x, _),) = loader.epoch(0)
    inside = (200 / 255 - 0.5) / 0.25
    is_pad = x == 0
    assert bool(torch.isclose(x[~is_pad], torch.tensor(inside)).all())
    assert 0.05 < float(is_pad.float().mean()) < 0.3  # padding shows, and only as zeros


def batches(loader, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch, start)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_deterministic_per_seed_and_epoch_and_resume():
    images = np.random.default_rng(0).integers(0, 256, (300, H, W, 3), dtype=np.uint8)
    make = lambda seed: DeviceLoader(images, np.arange(300), batch_size=32, train=True, seed=seed)
    a, b = make(7), make(7)
    assert len(a) == 300 // 32
    e1 = batches(a, 1)
    assert same(e1, batches(b, 1))
    assert not same(e1, batches(a, 2))
    assert not same(e1, batches(make(8), 1))
    for start in (0, 1, 4, len(a)):
        assert same(batches(a, 1, start), e1[start:])
    with pytest.raises(UsageError):
        a.epoch(1, start_batch=len(a) + 1)


def test_ddp_shards_disjoint_and_equal_to_single_process_global_batch():
    n, b, world = 203, 16, 2
    images = np.random.default_rng(1).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    ranks = [
        DeviceLoader(images, np.arange(n), batch_size=b, train=True, seed=5, rank=r, world_size=world)
        for r in range(world)
    ]
    single = DeviceLoader(images, np.arange(n), batch_size=b * world, train=True, seed=5)
    steps = n // (b * world)
    assert all(len(r) == steps for r in ranks) and len(single) == steps
    for epoch in (0, 1):
        per_rank = [batches(r, epoch) for r in ranks]
        seen = torch.cat([y for rb in per_rank for _, y in rb])
        assert len(set(seen.tolist())) == len(seen) == steps * b * world
        perm = torch.randperm(n, generator=epoch_generator(5, epoch))
        assert set(seen.tolist()) == set(perm[: steps * b * world].tolist())
        for step, (x, y) in enumerate(batches(single, epoch)):
            assert torch.equal(y, torch.cat([per_rank[r][step][1] for r in range(world)]))
            assert torch.equal(x, torch.cat([per_rank[r][step][0] for r in range(world)]))
            assert torch.equal(y, perm[step * b * world : (step + 1) * b * world])


@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_covers_every_sample_once(world):
    n = 103
    images = np.random.default_rng(2).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    xs, ys = [], []
    for r in range(world):
        loader = DeviceLoader(images, np.arange(n), batch_size=10, train=False, rank=r, world_size=world)
        got = batches(loader, 0)
        assert len(loader) == len(got)
        assert same(got, batches(loader, 3))  # no randomness
        xs += [x for x, _ in got]
        ys += [y for _, y in got]
    assert torch.equal(torch.cat(ys), torch.arange(n))  # in order, each exactly once
    expect = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(torch.cat(xs), expect)  # no augmentation


def test_channel_and_pixel_normalisation():
    images = np.random.default_rng(3).integers(0, 256, (20, H, W, 3), dtype=np.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    loader = DeviceLoader(images, np.zeros(20), batch_size=20, train=False, mean=mean, std=std)
    ((x, y),) = loader.epoch(0)
    ref = (images / 255.0 - np.array(mean)) / np.array(std)
    assert np.allclose(x.permute(0, 2, 3, 1).numpy(), ref, atol=1e-5)
    assert y.dtype == torch.int64
    pm = (images.mean(axis=0) / 255).astype(np.float32)
    loader = DeviceLoader(images, np.zeros(20), batch_size=20, train=False, pixel_mean=pm)
    ((x, _),) = loader.epoch(0)
    assert np.allclose(x.permute(0, 2, 3, 1).numpy(), images / 255.0 - pm, atol=1e-6)
    assert abs(float(x.mean())) < 1e-5


def test_dtype_channels_last_augment_flag_and_tensor_input():
    images = torch.randint(0, 256, (64, H, W, 3), dtype=torch.uint8)
    loader = DeviceLoader(
        images, torch.arange(64), batch_size=8, train=True, channels_last=True, dtype=torch.bfloat16, augment=False
    )
    x, y = next(loader.epoch(0))
    assert x.dtype == torch.bfloat16 and x.shape == (8, 3, H, W)
    assert x.is_contiguous(memory_format=torch.channels_last)
    expect = images[y].permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(x.float(), expect, atol=1e-2)  # shuffled but not augmented


def test_bad_arguments():
    images = np.zeros((10, H, W, 3), np.uint8)
    with pytest.raises(UsageError, match="fewer than one global batch"):
        DeviceLoader(images, np.zeros(10), batch_size=8, train=True, world_size=2)
    with pytest.raises(UsageError):
        DeviceLoader(images, np.zeros(10), batch_size=8, train=True, rank=2, world_size=2)
    with pytest.raises(UsageError, match="uint8"):
        DeviceLoader(images.astype(np.float32), np.zeros(10), batch_size=2, train=False)
    with pytest.raises(UsageError, match="labels"):
        DeviceLoader(images, np.zeros(9), batch_size=2, train=False)


def test_cpu_threads_are_restored_between_batches():
    before = torch.get_num_threads()
    images = np.zeros((40, H, W, 3), np.uint8)
    for threads in (1, None):
        loader = DeviceLoader(images, np.zeros(40), batch_size=8, train=True, cpu_threads=threads)
        for _x, _y in loader.epoch(0):
            assert torch.get_num_threads() == before
