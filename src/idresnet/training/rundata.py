"""The data of a run, and of an evaluation: one object per kind of dataset, so that the
training loop never asks which dataset it is on.

- :class:`MemoryData`: in-memory datasets (CIFAR, small image folders, synthetic) go to
  the device once and are cut there (:class:`~idresnet.data.DeviceLoader`); one test
  loader; the metrics columns :data:`~idresnet.training.metrics.COLUMNS`.
- :class:`StreamedData`: ImageNet-layout folders decoded by DataLoader worker processes
  (:class:`~idresnet.data.stream.StreamLoader`) with the ImageNet mean and std; one test
  loader per evaluation crop (the first is the run's test error); the metrics add top-5,
  the errors at further crops, the loader's waiting time and the skipped images.

:func:`build_data` makes either for a training config; :func:`eval_loaders` makes the test
loaders alone, for ``idresnet eval``, with the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idresnet.data import STREAMED, DeviceLoader, fingerprint, load_dataset
from idresnet.data.imagenet import FileDataset, load_imagenet
from idresnet.data.stream import StreamLoader, worker_failure
from idresnet.data.transforms import CenterCrop, train_transform
from idresnet.networks.preprocessing import IMAGENET_CROP, IMAGENET_MEAN, IMAGENET_STD, eval_resize
from idresnet.training import distributed
from idresnet.training.config import TrainConfig
from idresnet.training.evaluation import evaluate
from idresnet.training.metrics import COLUMNS, finite_or_none, stream_columns

MAX_AUTO_WORKERS = 8
# what the weights record to rebuild the test set (``idresnet eval``)
DATASET_KEYS = ("dataset", "data", "train_size", "test_size", "seed")


@dataclass
class RunData:
    """What a run trains and evaluates on; subclasses say how each kind reports."""

    name: str
    description: str
    classes: list
    train_count: int
    test_count: int
    image_shape: list
    norm: dict
    train_loader: Any  # DeviceLoader or StreamLoader: len(), epoch(e, start_batch=b)
    test_loaders: dict  # eval crop (None for in-memory data) -> loader; the first is the headline
    fingerprint: dict = field(default_factory=dict)  # idresnet.data.fingerprint: what a resume must find
    columns: tuple = COLUMNS
    dataset_keys: tuple = DATASET_KEYS

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def record(self) -> dict:
        """The dataset part of ``run_info`` in config.yaml."""
        return {
            "name": self.name,
            "description": self.description,
            "num_classes": self.num_classes,
            "train_images": self.train_count,
            "test_images": self.test_count,
            "image_shape": list(self.image_shape),
            "fingerprint": self.fingerprint,
        }

    def skipped(self) -> int:
        """Unreadable images skipped so far by this process's loaders."""
        loaders = [self.train_loader, *self.test_loaders.values()]
        return sum(getattr(loader, "skipped", 0) for loader in loaders)

    def evaluate(self, model, **kw) -> tuple[dict, dict, dict]:
        """Evaluate at every test loader: ``(headline result, its metrics columns, what the
        checkpoint keeps of it)``."""
        results = {crop: evaluate(model, loader, **kw) for crop, loader in self.test_loaders.items()}
        first = results[next(iter(results))]
        columns = {"test_loss": first["loss"], "test_error": first["error"], **self._eval_columns(results)}
        return first, columns, self._eval_record(results)

    def _eval_columns(self, results: dict) -> dict:
        return {}

    def _eval_record(self, results: dict) -> dict:
        return {}

    def row_columns(self, data_time_s: float, step_time_s: float, skipped: int) -> dict:
        """The loader's share of a metrics row (none for in-memory data)."""
        return {}

    def checkpoint_extra(self, skipped: int) -> dict:
        return {}

    def status_extra(self, last_eval: dict | None, final: bool) -> dict:
        """What status.json adds for this data (none for in-memory data)."""
        return {}

    def final_errors(self, last_eval: dict | None) -> dict | None:
        """{crop: {"top1", "top5"}} of the last evaluation, where reported per crop."""
        return None

    def loader_failure(self, exc: BaseException) -> BaseException | None:
        """The one-line error to raise for an exception of a training step that the loader
        caused (a dead or stuck worker process), or None: not the loader's (in-memory data
        has no worker process)."""
        return None


class MemoryData(RunData):
    """CIFAR, small image folders and synthetic data, on the device as uint8."""


@dataclass
class StreamedData(RunData):
    """ImageNet-layout folders, streamed by worker processes, evaluated at several crops."""

    loading: dict = field(default_factory=dict)  # how the folder is read, for run_info
    workers: int = 0  # DataLoader worker processes per process

    def record(self) -> dict:
        return {**super().record(), "loading": self.loading}

    def _eval_columns(self, results: dict) -> dict:
        crops = list(results)
        out = {"test_top5_error": results[crops[0]]["top5_error"]}
        for c in crops[1:]:
            r = results[c]
            out.update(
                {f"test_loss_{c}": r["loss"], f"test_error_{c}": r["error"], f"test_top5_error_{c}": r["top5_error"]}
            )
        return out

    def _eval_record(self, results: dict) -> dict:
        return {"crops": {str(c): r for c, r in results.items()}}

    def row_columns(self, data_time_s: float, step_time_s: float, skipped: int) -> dict:
        return {"data_time_s": data_time_s, "step_time_s": step_time_s, "skipped_images": skipped}

    def checkpoint_extra(self, skipped: int) -> dict:
        return {"skipped_images": skipped}

    def status_extra(self, last_eval: dict | None, final: bool) -> dict:
        return {"final_test_errors": self.final_errors(last_eval) if final else None}

    def loader_failure(self, exc: BaseException) -> BaseException | None:
        # torch's SIGCHLD handler raises a dead worker's RuntimeError from anywhere in a step
        return worker_failure(exc, self.workers)

    def final_errors(self, last_eval: dict | None) -> dict | None:
        crops = (last_eval or {}).get("crops")
        if not crops:
            return None
        return {
            c: {"top1": finite_or_none(r["error"]), "top5": finite_or_none(r["top5_error"])} for c, r in crops.items()
        }


def build_data(cfg: TrainConfig, dist: distributed.DistInfo, device, channels_last: bool) -> RunData:
    """The run's data: streamed for ``imagenet``, in memory otherwise."""
    per_process = cfg.batch_size // dist.world_size
    if cfg.dataset in STREAMED:
        return _streamed(cfg, dist, device, channels_last, per_process)
    ds = load_data(cfg, dist)
    norm = normalization(ds, cfg.normalization)
    loader = dict(device=device, seed=cfg.seed, dist=dist, channels_last=channels_last)
    train = make_loader(ds.train_images, ds.train_labels, norm, batch_size=per_process, train=True, **loader)
    test = make_loader(ds.test_images, ds.test_labels, norm, batch_size=max(per_process, 256), train=False, **loader)
    return MemoryData(
        ds.name,
        ds.description,
        list(ds.classes),
        len(ds.train_labels),
        len(ds.test_labels),
        list(ds.image_shape),
        norm,
        train,
        {None: test},
        fingerprint=fingerprint(ds),
    )


def _streamed(cfg: TrainConfig, dist, device, channels_last, per_process) -> StreamedData:

    folder = load_imagenet(cfg.data, train_size=cfg.train_size, test_size=cfg.test_size, seed=cfg.seed)
    workers = auto_workers(cfg.workers)
    norm = {"kind": "channel", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "pixel_mean": None}
    common = dict(
        device=device,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        workers=workers,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        channels_last=channels_last,
    )
    augment = train_transform(cfg.augmentation, cfg.train_crop, cfg.scale_range)
    train = StreamLoader(
        FileDataset(folder.train_files, folder.train_labels, augment, seed=cfg.seed),
        batch_size=per_process,
        train=True,
        **common,
    )
    resizes = cfg.eval_resize or [eval_resize(c, cfg.train_crop) for c in cfg.eval_crops]
    tests = val_loaders(folder, cfg.eval_crops, resizes, batch_size=per_process, **common)
    loading = {
        "workers": workers,
        "augmentation": cfg.augmentation,
        "train_crop": cfg.train_crop,
        "scale_range": list(cfg.scale_range) if cfg.augmentation == "scale" else None,
        "eval": [{"crop": c, "resize": r} for c, r in zip(cfg.eval_crops, resizes)],
    }
    return StreamedData(
        cfg.dataset,
        folder.description,
        list(folder.classes),
        len(folder.train_labels),
        len(folder.val_labels),
        [cfg.train_crop, cfg.train_crop, 3],
        norm,
        train,
        tests,
        fingerprint=fingerprint(folder),
        columns=stream_columns(cfg.eval_crops),
        dataset_keys=DATASET_KEYS + ("train_crop", "eval_crops", "eval_resize"),
        loading=loading,
        workers=workers,
    )


@dataclass
class EvalSet:
    """The test loaders of trained weights (``idresnet eval``): crop (None: in memory) ->
    loader, with the shorter side each crop is taken from (streamed data only)."""

    description: str
    loaders: dict
    resizes: list | None = None


def eval_loaders(
    dataset: str,
    data,
    *,
    norm: dict | None,
    batch_size: int,
    device,
    seed: int = 0,
    cache_dir=None,
    train_size=None,
    test_size=None,
    crops=None,
    resizes=None,
    train_crop: int = IMAGENET_CROP,
    workers=None,
) -> EvalSet:
    """The test split of ``dataset`` as the training saw it: the same loading code, the
    weights' normalisation (or the dataset's statistics when none is recorded)."""
    dist = distributed.DistInfo()
    if dataset in STREAMED:
        folder = load_imagenet(data, test_size=test_size, seed=seed)
        crops = crops or [train_crop]
        resizes = resizes or [eval_resize(c, train_crop) for c in crops]
        loaders = val_loaders(
            folder,
            crops,
            resizes,
            batch_size=batch_size,
            seed=seed,
            device=device,
            workers=auto_workers(workers),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        return EvalSet(folder.description, loaders, list(resizes))
    # the recorded train_size too: the synthetic test split depends on it
    ds = load_dataset(dataset, data, cache_dir=cache_dir, train_size=train_size, test_size=test_size, seed=seed)
    norm = norm or normalization(ds, "channel")
    loader = make_loader(
        ds.test_images,
        ds.test_labels,
        norm,
        batch_size=batch_size,
        train=False,
        device=device,
        seed=seed,
        dist=dist,
        channels_last=False,
    )
    return EvalSet(ds.description, {None: loader})


def auto_workers(setting: int | None) -> int:
    """``setting``, or the CPUs available to this process divided by the processes on
    this node (torchrun's LOCAL_WORLD_SIZE), at most 8."""
    if setting is not None:
        return setting
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(MAX_AUTO_WORKERS, cpus // max(local, 1)))


def val_loaders(folder, crops, resizes, *, batch_size: int, seed: int = 0, **loader) -> dict:
    """{crop: StreamLoader} over ``folder``'s val images, each resized then centre-cropped."""

    tests = {}
    for crop, resize in zip(crops, resizes):
        data = FileDataset(folder.val_files, folder.val_labels, CenterCrop(crop, resize), seed=seed, random=False)
        tests[crop] = StreamLoader(data, batch_size=batch_size, train=False, seed=seed, **loader)
    return tests


# ---------------------------------------------------------------- in-memory data


def load_data(cfg: TrainConfig, dist: distributed.DistInfo):
    """The dataset; rank 0 first (it may download or fill the cache), then the others."""

    def load():
        return load_dataset(
            cfg.dataset,
            cfg.data,
            cache_dir=cfg.cache_dir,
            download=cfg.download,
            train_size=cfg.train_size,
            test_size=cfg.test_size,
            seed=cfg.seed,
        )

    ds = load() if dist.is_main else None
    distributed.barrier(dist)
    return ds if dist.is_main else load()


def normalization(ds, kind: str) -> dict:
    """The input normalisation, as plain numbers: channel mean/std, or the pixel mean."""
    mean, std = ds.channel_stats()
    record = {"kind": kind, "mean": [float(m) for m in mean], "std": [float(s) for s in std], "pixel_mean": None}
    if kind == "pixel":
        record["pixel_mean"] = ds.pixel_mean().tolist()
    return record


def make_loader(images, labels, norm: dict, *, batch_size, train, device, seed, dist, channels_last):
    """A DeviceLoader over uint8 ``images`` with the normalisation ``norm``."""
    pixel = None if norm.get("pixel_mean") is None else np.asarray(norm["pixel_mean"], np.float32)
    return DeviceLoader(
        images,
        labels,
        batch_size=batch_size,
        train=train,
        device=device,
        mean=norm["mean"],
        std=norm["std"],
        pixel_mean=pixel,
        seed=seed,
        rank=dist.rank,
        world_size=dist.world_size,
        channels_last=channels_last,
    )
