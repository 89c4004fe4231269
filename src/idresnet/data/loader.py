"""DeviceLoader: batches cut, augmented and normalised on the training device.

The whole uint8 dataset lives on the device (NCHW, zero-padded once when augmenting).
A batch is an ``index_select``, one ``gather`` over flat pixel indices doing crop and
flip together, and one fused multiply-add for the normalisation: no per-image Python
loop. The paper's augmentation (He et al. 2016, Sec. 4.2, following the
original ResNet paper): pad 4 pixels per side, take a random 32x32 crop, flip
horizontally with probability 1/2, independently per image; test images are used
as they are. As in fb.resnet.torch, on which the authors' code builds, the image is
normalised first and the padding is zero in normalised space (the mean colour, or
the mean image under per-pixel mean subtraction).

Randomness: every draw of an epoch (the permutation, crop offsets, flips) comes up
front from a CPU ``torch.Generator`` seeded from ``(seed, epoch)``, so the batches are
identical on every rank and device, differ between epochs, and
``epoch(e, start_batch=b)`` equals ``epoch(e)`` without its first ``b`` batches.

Sharding, training: an epoch has ``N // (batch_size * world_size)`` steps; step ``i``
uses permutation positions ``[i*G, (i+1)*G)`` with ``G = batch_size * world_size`` and
rank ``r`` takes the ``r``-th slice of ``batch_size``: ranks are disjoint and nothing
repeats. The last ``N mod G`` samples of the permutation are dropped; the epoch's
reshuffle makes them different samples every epoch.
Sharding, evaluation: no shuffle or augmentation; rank ``r`` takes the ``r``-th of
``world_size`` contiguous shards (sizes differ by at most one, the first ranks get
the extra samples), in batches whose last may be smaller; concatenating the ranks'
outputs in rank order gives the test set in order, every sample exactly once. Ranks
may then run different numbers of batches (by one): reduce totals after the loop.

On a CPU device a batch is assembled with ``cpu_threads`` intra-op threads (default 1,
restored before the batch is yielded): the work is too small to gain from threads,
and on a busy machine each parallel kernel can stall on a descheduled OpenMP thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from idresnet.errors import UsageError
from idresnet.seeding import EPOCH, torch_generator


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of an epoch's order, crops and flips (:mod:`idresnet.seeding`)."""
    return torch_generator(seed, EPOCH, epoch)


@contextmanager
def _threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: unchanged), then restore."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def channel_affine(mean, std, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` of shape (1, 3, 1, 1) with (x/255 - mean)/std = x * scale + shift."""
    m = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    return (1 / (255.0 * s)).float().to(device), (-m / s).float().to(device)


def input_affine(mean, std, pixel_mean, device, image_shape=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``x * scale + shift`` the normalised uint8 NCHW image ``x``:
    per channel ``(x/255 - mean) / std``, or with ``pixel_mean`` (an (H, W, 3) array in
    [0, 1], of ``image_shape`` where given) ``x/255 - pixel_mean`` (no std; the shift is
    then (1, 3, H, W)). The one normalisation of training, evaluation and prediction."""
    if pixel_mean is None:
        return channel_affine(mean, std, device)
    pm = torch.as_tensor(np.asarray(pixel_mean), dtype=torch.float32)
    if image_shape is not None and tuple(pm.shape) != tuple(image_shape):
        raise UsageError(f"pixel_mean shape {tuple(pm.shape)} != image shape {tuple(image_shape)}")
    return torch.full((1, 3, 1, 1), 1 / 255.0, device=device), -pm.permute(2, 0, 1).unsqueeze(0).to(device)


class ShardedBatches:
    """Which samples each rank takes per step. Training: every step takes one global batch
    of a shuffled order, rank r its r-th slice (the remainder of an epoch is dropped).
    Evaluation: each rank a contiguous shard, in batches, nothing dropped. Needs ``n``,
    ``batch_size``, ``train``, ``rank`` and ``world_size`` set; call ``_plan_steps``."""

    def _plan_steps(self) -> None:
        if self.train:
            self.global_batch = self.batch_size * self.world_size
            self.steps = self.n // self.global_batch
            if self.steps == 0:
                raise UsageError(
                    f"{self.n} training samples are fewer than one global batch "
                    f"({self.batch_size} x {self.world_size} ranks)"
                )
        else:
            sizes = [self.n // self.world_size + (r < self.n % self.world_size) for r in range(self.world_size)]
            self.shard_start, self.shard_size = sum(sizes[: self.rank]), sizes[self.rank]
            self.steps = -(-self.shard_size // self.batch_size)

    def __len__(self) -> int:
        return self.steps

    def positions(self, step: int) -> slice:
        """Positions in the epoch's order of this rank's samples at ``step``."""
        if self.train:
            start = step * self.global_batch + self.rank * self.batch_size
            return slice(start, start + self.batch_size)
        start = step * self.batch_size
        return slice(start, min(start + self.batch_size, self.shard_size))

    def _check_start(self, start_batch: int) -> None:
        if not 0 <= start_batch <= self.steps:
            raise UsageError(f"start_batch {start_batch} outside [0, {self.steps}]")


class DeviceLoader(ShardedBatches):
    """Batches of a uint8 image array kept on ``device``; see the module docstring."""

    def __init__(
        self,
        images,
        labels,
        *,
        batch_size: int,
        train: bool,
        device="cpu",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        pixel_mean=None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        dtype=torch.float32,
        augment: bool | None = None,
        pad: int = 4,
        cpu_threads: int | None = 1,
    ):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise UsageError(
                f"invalid batch_size {batch_size}, rank {rank} or world_size "
                f"{world_size}: need batch_size >= 1 and 0 <= rank < world_size"
            )
        self.device = torch.device(device)
        x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise UsageError(f"images must be uint8 (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
        self.augment = train if augment is None else augment
        self.pad = pad if self.augment else 0
        images = x.to(self.device).permute(0, 3, 1, 2)  # NCHW uint8, padded once if augmenting
        self.images = F.pad(images, (self.pad,) * 4) if self.pad else images.contiguous()
        self.labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).to(
            self.device, torch.int64
        )
        if len(self.labels) != len(self.images):
            raise UsageError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.n, self.hw = len(self.images), tuple(x.shape[1:3])
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.rank, self.world_size = rank, world_size
        self.dtype, self.channels_last = dtype, channels_last
        self.cpu_threads = cpu_threads if self.device.type == "cpu" else None
        # normalised = x * scale + shift; shift is (1, 3, 1, 1) or, per pixel, (1, 3, H, W)
        self.scale, self.shift = input_affine(mean, std, pixel_mean, self.device, tuple(x.shape[1:]))
        if self.augment and self.shift.shape[-1] > 1:  # per-pixel shift, zero on the border
            self.shift_padded = F.pad(self.shift[0], (self.pad,) * 4).flatten(1)  # (3, Hp*Wp)
        self._plan_steps()

    def _draws(self, epoch: int):
        """All of an epoch's random draws, made up front (CPU), moved to the device."""
        g = epoch_generator(self.seed, epoch)
        if self.train:
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.shard_start, self.shard_start + self.shard_size)
        if not self.augment:
            return order.to(self.device), None, None, None
        span = 2 * self.pad + 1
        oy = torch.randint(0, span, (len(order),), generator=g)
        ox = torch.randint(0, span, (len(order),), generator=g)
        flip = torch.randint(0, 2, (len(order),), generator=g).bool()
        return tuple(t.to(self.device) for t in (order, oy, ox, flip))

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's ``(images, labels)`` batches of ``epoch`` from ``start_batch``."""
        self._check_start(start_batch)
        return self._batches(self._draws(epoch), start_batch)

    def _batches(self, draws, start_batch: int):
        order, oy, ox, flip = draws
        for step in range(start_batch, self.steps):
            pos = self.positions(step)
            with _threads(self.cpu_threads):
                idx = order[pos]
                x = self.images.index_select(0, idx)
                if oy is None:
                    x = x.float().mul_(self.scale).add_(self.shift)
                else:
                    x = self._crop_flip_normalise(x, oy[pos], ox[pos], flip[pos])
                x = x.to(self.dtype)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = self.labels.index_select(0, idx)
            yield x, y

    def _crop_flip_normalise(self, xp, oy, ox, flip):
        """Crop the padded uint8 batch at (oy, ox), mirrored where flip, and normalise
        with zero on the padding: one gather over flat pixel indices."""
        b, c, hp, wp = xp.shape
        (h, w), p = self.hw, self.pad
        rows = oy[:, None] + torch.arange(h, device=xp.device)  # (B, H)
        ar = torch.arange(w, device=xp.device)
        cols = ox[:, None] + torch.where(flip[:, None], w - 1 - ar, ar)  # (B, W)
        flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)  # (B, 1, H*W)
        x = xp.view(b, c, hp * wp).gather(2, flat.expand(b, c, h * w)).view(b, c, h, w)
        if self.shift.shape[-1] > 1:  # per-pixel mean, gathered at the source pixels
            shift = self.shift_padded[:, flat.view(-1)].view(c, b, h, w).transpose(0, 1)
            return x.float().mul_(self.scale).add_(shift)
        inside = ((rows >= p) & (rows < p + h))[:, :, None] & ((cols >= p) & (cols < p + w))[:, None, :]  # (B, H, W)
        return torch.addcmul(self.shift * inside[:, None], x.float(), self.scale)
