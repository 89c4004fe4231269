"""StreamLoader: batches decoded from files by DataLoader workers, normalised on the device.

The same interface and the same sharding as :class:`idresnet.data.DeviceLoader`
(``len(loader)``, ``loader.epoch(e, start_batch=b)`` yielding float ``(B, 3, H, W)``
images and int64 labels on the device), for datasets too large to hold in memory:

- Order: training draws the epoch's permutation of all N samples from ``(seed, epoch)``
  (the DeviceLoader's generator); an epoch has ``N // (batch_size * world_size)`` steps,
  step ``i`` uses permutation positions ``[i*G, (i+1)*G)``, rank ``r`` takes the ``r``-th
  slice of ``batch_size`` (a DistributedSampler that keeps global batches identical for
  any number of ranks); the last ``N mod G`` samples are dropped. Evaluation: rank ``r``
  takes the ``r``-th contiguous shard, in order.
- Augmentation: each image's draws come from ``(seed, epoch, index)``, so batches do not
  depend on ``workers`` and ``epoch(e, start_batch=b)`` equals ``epoch(e)`` without its
  first ``b`` batches: resuming mid-epoch is exact.
- Workers: ``workers`` DataLoader processes decode with Pillow (0: in this process).
  They ignore SIGINT and SIGTERM, so that Ctrl-C or a job stop sent to the whole process
  group (Slurm, systemd) reaches the training loop alone, which checkpoints at the end of
  the step; the DataLoader's shutdown ends them (a worker still alive after it, a stuck
  one, is killed with SIGKILL); they use their own seed generator, so
  creating an epoch's iterator draws nothing from torch's global generator. No batch
  for :data:`WORKER_TIMEOUT_S` seconds, or a worker that dies (killed for memory, say),
  is a one-line DatasetError.
- Batches cross to the device as uint8 (pinned on CUDA, 4x less than float) and are
  normalised there: ``(x/255 - mean) / std`` per channel.
- Damaged files: the item is dropped from its batch (which is then smaller), a
  :class:`CorruptImageWarning` names the file, and ``loader.skipped`` counts it. A
  training batch whose files are all damaged is a DatasetError (every rank must step);
  an evaluation batch is skipped.
"""

from __future__ import annotations

import functools
import os
import signal
import warnings

import torch
from torch.utils.data import DataLoader

from idresnet.data.imagenet import collate
from idresnet.data.loader import ShardedBatches, channel_affine, epoch_generator
from idresnet.errors import DatasetError, UsageError, one_line
from idresnet.networks.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from idresnet.signals import exit_with_parent


class CorruptImageWarning(UserWarning):
    """An image file that could not be decoded was skipped."""


WORKER_TIMEOUT_S = 300  # no batch from the workers for this long: they are stuck


def _worker_init(_worker_id: int, parent: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # the parent stops the workers (see above)
        signal.signal(sig, signal.SIG_IGN)
    exit_with_parent(parent)  # a SIGKILLed parent leaves no worker behind


DEAD_WORKER = "DataLoader worker (pid"  # how torch begins a dead worker's report
STOPPED = ("Terminated", "Interrupt", "Hangup")  # a worker killed by these was stopped, not broken


def worker_failure(exc: BaseException, workers: int) -> BaseException | None:
    """The one-line error for a DataLoader failure caused by a stuck or dead worker (a
    KeyboardInterrupt when a job stop signalled every process), else None. Also for the
    training loop: torch's SIGCHLD handler raises a dead worker's RuntimeError anywhere."""
    text = str(exc)
    hint = "out of memory? fewer workers may help"
    if text.startswith("DataLoader timed out"):
        return DatasetError(
            f"no batch from the {workers} DataLoader worker processes in "
            f"{WORKER_TIMEOUT_S} s (a file that hangs on read?)"
        )
    if text.startswith(DEAD_WORKER):  # torch: exited unexpectedly, killed by signal
        first = one_line(text.splitlines()[0])
        if any(f"killed by signal: {name}" in first for name in STOPPED):
            return KeyboardInterrupt(first)
        return DatasetError(f"{first} ({hint})")
    if workers and isinstance(exc, (OSError, EOFError)) and not text.startswith("Caught "):
        # a worker that dies while it hands over a batch breaks the connection (not an
        # error of the worker's own, which torch re-raises as "Caught ... in DataLoader worker")
        return DatasetError(f"lost a DataLoader worker process ({type(exc).__name__}: {one_line(text)}; {hint})")
    return None


def _shut_down(batches) -> None:
    """Stop a DataLoader iterator's workers now, not when it is collected: an error's
    traceback can keep it alive, and meanwhile torch's SIGCHLD handler would report a
    dead worker of it at any later moment, from any code."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # torch's, for workers > 0
    try:
        if shutdown is not None:
            shutdown()
    finally:
        for worker in getattr(batches, "_workers", ()):  # stuck: they ignore torch's SIGTERM
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGKILL)
                worker.join(5)


class _Batches:
    """The batch sampler of one epoch from ``start``: lists of ``(index, epoch)`` keys."""

    def __init__(self, loader: StreamLoader, epoch: int, start: int):
        self.loader, self.epoch, self.start = loader, epoch, start
        if loader.train:
            self.order = torch.randperm(loader.n, generator=epoch_generator(loader.seed, epoch))
        else:
            self.order = torch.arange(loader.shard_start, loader.shard_start + loader.shard_size)

    def __len__(self) -> int:
        return self.loader.steps - self.start

    def __iter__(self):
        for step in range(self.start, self.loader.steps):
            yield [(i, self.epoch) for i in self.order[self.loader.positions(step)].tolist()]


class StreamLoader(ShardedBatches):
    """Batches of a :class:`~idresnet.data.imagenet.FileDataset`; see the module docstring."""

    def __init__(
        self,
        dataset,
        *,
        batch_size: int,
        train: bool,
        device="cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        channels_last: bool = False,
        dtype=torch.float32,
        prefetch: int = 2,
    ):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or workers < 0:
            raise UsageError(
                f"invalid batch_size {batch_size}, rank {rank}, world_size {world_size} "
                f"or workers {workers}: need batch_size >= 1, 0 <= rank < world_size, "
                "workers >= 0"
            )
        self.dataset, self.n = dataset, len(dataset)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.rank, self.world_size, self.workers, self.prefetch = rank, world_size, workers, prefetch
        self.device = torch.device(device)
        self.dtype, self.channels_last = dtype, channels_last
        self.scale, self.shift = channel_affine(mean, std, self.device)
        self.skipped = 0
        self._plan_steps()

    def epoch(self, epoch: int, start_batch: int = 0):
        """Yield this rank's ``(images, labels)`` batches of ``epoch`` from ``start_batch``."""
        self._check_start(start_batch)
        return self._batches(_Batches(self, epoch, start_batch))

    def _data_loader(self, sampler: _Batches) -> DataLoader:
        extra = (
            {
                "prefetch_factor": self.prefetch,
                "worker_init_fn": functools.partial(_worker_init, parent=os.getpid()),
                "timeout": WORKER_TIMEOUT_S,
            }
            if self.workers
            else {}
        )
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.seed),
            **extra,
        )

    def _batches(self, sampler: _Batches):
        batches = iter(self._data_loader(sampler))
        try:
            while (batch := self._next(batches)) is not None:
                x, y, skipped = batch
                for reason in skipped:
                    warnings.warn(f"skipped unreadable image {reason}", CorruptImageWarning, stacklevel=2)
                self.skipped += len(skipped)
                if x is None:
                    if self.train:
                        raise DatasetError(f"every image of a training batch is unreadable (first: {skipped[0]})")
                    continue
                yield self._to_device(x), y.to(self.device, non_blocking=True)
        finally:
            # torch's SIGCHLD handler may report a dead worker at any bytecode, the entry of
            # _shut_down included; a second call finishes what the report interrupted
            for _attempt in (1, 2, 3):
                try:
                    _shut_down(batches)
                    break
                except RuntimeError as exc:
                    if not str(exc).startswith(DEAD_WORKER):
                        raise

    def _next(self, batches):
        """The next batch, None at the end; a stuck or dead worker is a one-line DatasetError."""
        try:
            return next(batches, None)
        except (RuntimeError, OSError, EOFError) as exc:
            error = worker_failure(exc, self.workers)
            if error is None:
                raise
        raise error

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised (B, 3, H, W) of ``dtype`` on the device."""
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # channels_last strides
        x = x.float().mul_(self.scale).add_(self.shift).to(self.dtype)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)
