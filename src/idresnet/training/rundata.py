"""The data of a run, and of an evaluation: one object per kind of dataset, so that the
training loop never asks which dataset it is on.

- :class:`MemoryData`: in-memory datasets (CIFAR, small image folders, synthetic) go to
  the device once and are cut there (:class:`~idresnet.data.DeviceLoader`); one test
  loader; the metrics columns :data:`~idresnet.training.metrics.COLUMNS`.
- :class:`StreamedData`: ImageNet-layout folders decoded by DataLoader worker processes
  (:class:`~idresnet.data.stream.StreamLoader`) with the ImageNet mean and std; one test
  loader per evaluation crop (the first is the run's test error); the metrics add top-5,
  the errors at further crops, the loader's waiting time and the skipped images.

Either may hold out a validation split of its training images (``val_split``,
:mod:`idresnet.data.validation`), evaluated un-augmented as the test set is: the
evaluations during training are then on it, and the test set is evaluated at the final
evaluation only. A test-time augmentation (``tta``, :mod:`idresnet.training.tta`) adds
its own result to the final evaluation.

:func:`build_data` makes either for a training config; :func:`eval_loaders` makes the test
loaders alone, for ``idresnet eval``, with the same code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idresnet.data import STREAMED, DeviceLoader, fingerprint, load_dataset
from idresnet.data.imagenet import FileDataset, load_imagenet
from idresnet.data.stream import StreamLoader, worker_failure
from idresnet.data.transforms import CenterCrop, TenCrop, train_transform
from idresnet.data.validation import hold_out
from idresnet.errors import UsageError
from idresnet.networks.preprocessing import IMAGENET_CROP, IMAGENET_MEAN, IMAGENET_STD, eval_resize
from idresnet.training import distributed
from idresnet.training.config import TrainConfig
from idresnet.training.evaluation import evaluate
from idresnet.training.metrics import COLUMNS, column, finite_or_none, run_columns
from idresnet.training.tta import PREDICT, describe

MAX_AUTO_WORKERS = 8
# what the weights record to rebuild the test set (``idresnet eval``)
DATASET_KEYS = ("dataset", "data", "train_size", "test_size", "seed", "val_split")
SPLITS = ("test", "train", "val")  # what idresnet eval can evaluate (train, val: in-memory datasets)


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
    val_loaders: dict = field(default_factory=dict)  # as test_loaders, over the held-out training images
    val_count: int = 0
    val_split: dict | None = None  # idresnet.data.validation's record of the split (val_split.json)
    tta: str | None = None  # the final evaluation's test-time augmentation, and its loaders
    tta_loaders: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def evaluated_on(self) -> str:
        """The set of the evaluations during training: "val" (a validation split) or "test"."""
        return "val" if self.val_loaders else "test"

    @property
    def eval_count(self) -> int:
        """Images in one evaluation during training."""
        return self.val_count if self.val_loaders else self.test_count

    def record(self) -> dict:
        """The dataset part of ``run_info`` in config.yaml."""
        return {
            "name": self.name,
            "description": self.description,
            "num_classes": self.num_classes,
            "train_images": self.train_count,
            "test_images": self.test_count,
            "val_images": self.val_count,
            "validation": {k: v for k, v in self.val_split.items() if k != "indices"} if self.val_split else None,
            "image_shape": list(self.image_shape),
            "fingerprint": self.fingerprint,
        }

    def skipped(self) -> int:
        """Unreadable images skipped so far by this process's loaders."""
        loaders = [self.train_loader, *self.test_loaders.values(), *self.val_loaders.values()]
        loaders += [t for t in self.tta_loaders.values() if all(t is not o for o in loaders)]
        return sum(getattr(loader, "skipped", 0) for loader in loaders)

    def evaluate(self, model, final: bool = False, **kw) -> tuple[dict, dict, dict]:
        """Evaluate the set of the evaluations during training (:attr:`evaluated_on`) at
        every loader (eval crop); at the ``final`` evaluation also the test set (after a
        validation set) and the TTA. Returns ``(the headline result of the evaluated set,
        the metrics columns, what the checkpoint keeps)``: the test set's result at the
        top level (as ever), a validation set's under ``val``, a TTA's under ``tta``."""
        on = self.evaluated_on
        sets = {on: self.val_loaders or self.test_loaders}
        if final:
            sets["test"] = self.test_loaders
        evaluated = {name: {c: evaluate(model, loader, **kw) for c, loader in ls.items()} for name, ls in sets.items()}
        columns: dict = {}
        record: dict = {}
        for name, results in evaluated.items():
            columns.update(self._eval_columns(results, name))
            entry = {**_first(results), **self._eval_record(results)}
            record.update(entry if name == "test" else {"val": entry})
        if final and self.tta:
            predict = PREDICT[self.tta]
            results = {c: evaluate(model, loader, predict=predict, **kw) for c, loader in self.tta_loaders.items()}
            columns.update(self._eval_columns(results, "test", self.tta))
            record["tta"] = {"method": self.tta, **_first(results), **self._eval_record(results)}
        return _first(evaluated[on]), columns, record

    def _eval_columns(self, results: dict, on: str, tta: str | None = None) -> dict:
        """The metrics columns of one set's results (``on``: "val" or "test")."""
        first = _first(results)
        return {column(on, "loss", tta=tta): first["loss"], column(on, "error", tta=tta): first["error"]}

    def _eval_record(self, results: dict) -> dict:
        return {}

    def row_columns(self, data_time_s: float, step_time_s: float, skipped: int) -> dict:
        """The loader's share of a metrics row (none for in-memory data)."""
        return {}

    def checkpoint_extra(self, skipped: int) -> dict:
        return {}

    def status_extra(self, last_eval: dict | None, final: bool) -> dict:
        """What status.json says of the evaluated sets: where the evaluations during
        training were, a validation split's final error, a TTA's final result."""
        last = last_eval or {}
        extra: dict = {"evaluated_on": self.evaluated_on}
        if self.val_loaders:
            extra["final_val_error"] = finite_or_none(last["val"]["error"]) if final and "val" in last else None
        if self.tta:
            extra["final_tta"] = self.tta_summary(last.get("tta")) if final else None
        return extra

    def tta_summary(self, record: dict | None) -> dict | None:
        """A TTA's final result as status.json and RunResult keep it, named as what it is."""
        if not record:
            return None
        summary = {
            "method": record["method"],
            "top1": finite_or_none(record["error"]),
            "top5": finite_or_none(record["top5_error"]),
            "protocol": describe(record["method"]),
        }
        crops = self.final_errors(record)
        return {**summary, "crops": crops} if crops else summary

    def final_errors(self, last_eval: dict | None) -> dict | None:
        """{crop: {"top1", "top5"}} of the last evaluation, where reported per crop."""
        return None

    def loader_failure(self, exc: BaseException) -> BaseException | None:
        """The one-line error to raise for an exception of a training step that the loader
        caused (a dead or stuck worker process), or None: not the loader's (in-memory data
        has no worker process)."""
        return None


def _first(results: dict) -> dict:
    """The result at the first loader (eval crop): the headline."""
    return results[next(iter(results))]


class MemoryData(RunData):
    """CIFAR, small image folders and synthetic data, on the device as uint8."""


@dataclass
class StreamedData(RunData):
    """ImageNet-layout folders, streamed by worker processes, evaluated at several crops."""

    loading: dict = field(default_factory=dict)  # how the folder is read, for run_info
    workers: int = 0  # DataLoader worker processes per process

    def record(self) -> dict:
        return {**super().record(), "loading": self.loading}

    def _eval_columns(self, results: dict, on: str, tta: str | None = None) -> dict:
        crops = list(results)
        out = {
            **super()._eval_columns(results, on, tta),
            column(on, "top5_error", tta=tta): results[crops[0]]["top5_error"],
        }
        for c in crops[1:]:
            out.update({column(on, k, c, tta): results[c][k] for k in ("loss", "error", "top5_error")})
        return out

    def _eval_record(self, results: dict) -> dict:
        return {"crops": {str(c): r for c, r in results.items()}}

    def row_columns(self, data_time_s: float, step_time_s: float, skipped: int) -> dict:
        return {"data_time_s": data_time_s, "step_time_s": step_time_s, "skipped_images": skipped}

    def checkpoint_extra(self, skipped: int) -> dict:
        return {"skipped_images": skipped}

    def status_extra(self, last_eval: dict | None, final: bool) -> dict:
        return {
            **super().status_extra(last_eval, final),
            "final_test_errors": self.final_errors(last_eval) if final else None,
        }

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
    identity = fingerprint(ds)  # of the data given: the split is the run's, not the data's
    val_images = val_labels = split = None
    if cfg.val_split:
        held = hold_out(ds.train_labels, cfg.val_split, ds.classes, cfg.seed)
        val_images, val_labels, split = ds.train_images[held.held], ds.train_labels[held.held], held.record
        ds = dataclasses.replace(
            ds,
            description=ds.description + _held_out_text(cfg),
            train_images=ds.train_images[held.kept],
            train_labels=ds.train_labels[held.kept],
            _stats=None,  # the normalisation is of the images trained on
        )
    norm = normalization(ds, cfg.normalization)
    loader = dict(device=device, seed=cfg.seed, dist=dist, channels_last=channels_last)
    train = make_loader(ds.train_images, ds.train_labels, norm, batch_size=per_process, train=True, **loader)
    evaluation = dict(batch_size=max(per_process, 256), train=False, **loader)
    test = make_loader(ds.test_images, ds.test_labels, norm, **evaluation)
    tests = {None: test}
    return MemoryData(
        ds.name,
        ds.description,
        list(ds.classes),
        len(ds.train_labels),
        len(ds.test_labels),
        list(ds.image_shape),
        norm,
        train,
        tests,
        fingerprint=identity,
        columns=run_columns(val=split is not None, tta=_tta(cfg)),
        val_loaders={} if split is None else {None: make_loader(val_images, val_labels, norm, **evaluation)},
        val_count=0 if val_labels is None else len(val_labels),
        val_split=split,
        tta=_tta(cfg),
        tta_loaders=tests if _tta(cfg) else {},
    )


def _tta(cfg: TrainConfig) -> str | None:
    return None if cfg.tta == "none" else cfg.tta


def _held_out_text(cfg: TrainConfig) -> str:
    return f" [validation: {cfg.val_split} training images held out, seed {cfg.seed}]"


def _streamed(cfg: TrainConfig, dist, device, channels_last, per_process) -> StreamedData:

    folder = load_imagenet(cfg.data, train_size=cfg.train_size, test_size=cfg.test_size, seed=cfg.seed)
    identity = fingerprint(folder)
    held = hold_out(folder.train_labels, cfg.val_split, folder.classes, cfg.seed) if cfg.val_split else None
    if held is not None:
        val_files, val_labels = folder.train_files[held.held], folder.train_labels[held.held]
        folder = dataclasses.replace(
            folder,
            train_files=folder.train_files[held.kept],
            train_labels=folder.train_labels[held.kept],
            description=folder.description + _held_out_text(cfg),
        )
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
    vals = {}
    if held is not None:
        vals = crop_loaders(val_files, val_labels, cfg.eval_crops, resizes, batch_size=per_process, **common)
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
        fingerprint=identity,
        columns=run_columns(val=held is not None, tta=_tta(cfg), eval_crops=cfg.eval_crops),
        dataset_keys=DATASET_KEYS + ("train_crop", "eval_crops", "eval_resize"),
        val_loaders=vals,
        val_count=0 if held is None else len(val_labels),
        val_split=None if held is None else held.record,
        tta=_tta(cfg),
        tta_loaders=tta_loaders(_tta(cfg), tests, folder, cfg.eval_crops, resizes, batch_size=per_process, **common),
        loading=loading,
        workers=workers,
    )


@dataclass
class EvalSet:
    """The test loaders of trained weights (``idresnet eval``): crop (None: in memory) ->
    loader, with the shorter side each crop is taken from (streamed data only), and the
    loaders of a test-time augmentation (``tta``; the same loaders for ``flip``)."""

    description: str
    loaders: dict
    resizes: list | None = None
    tta_loaders: dict = field(default_factory=dict)


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
    tta: str | None = None,
    split: str = "test",
    val_split: int | None = None,
) -> EvalSet:
    """The test split of ``dataset`` as the training saw it: the same loading code, the
    weights' normalisation (or the dataset's statistics when none is recorded). ``split``
    ``train``: the images the run trained on, un-augmented (without its held-out
    ``val_split`` images); ``val``: those held-out images (in-memory datasets)."""
    dist = distributed.DistInfo()
    if split not in SPLITS:
        raise UsageError(f"invalid split {split!r}: valid: {', '.join(SPLITS)}")
    if split != "test" and dataset in STREAMED:
        raise UsageError(f"--split {split} is for the in-memory datasets (CIFAR, folders); {dataset}: test only")
    if split == "val" and not val_split:
        raise UsageError("--split val: the weights record no validation split (the run had no --val-split)")
    if dataset in STREAMED:
        folder = load_imagenet(data, test_size=test_size, seed=seed)
        crops = crops or [train_crop]
        resizes = resizes or [eval_resize(c, train_crop) for c in crops]
        common = dict(device=device, workers=auto_workers(workers), mean=IMAGENET_MEAN, std=IMAGENET_STD)
        loaders = val_loaders(folder, crops, resizes, batch_size=batch_size, seed=seed, **common)
        extra = tta_loaders(tta, loaders, folder, crops, resizes, batch_size=batch_size, seed=seed, **common)
        return EvalSet(folder.description, loaders, list(resizes), extra)
    # the recorded train_size too: the synthetic test split depends on it
    ds = load_dataset(dataset, data, cache_dir=cache_dir, train_size=train_size, test_size=test_size, seed=seed)
    images, labels, description = ds.test_images, ds.test_labels, ds.description
    if split != "test":
        held = hold_out(ds.train_labels, val_split, ds.classes, seed) if val_split else None
        chosen = slice(None) if held is None else held.held if split == "val" else held.kept
        images, labels = ds.train_images[chosen], ds.train_labels[chosen]
        description = f"{ds.description}, {'training images, un-augmented' if split == 'train' else 'validation split'}"
    norm = norm or normalization(ds, "channel")
    loader = make_loader(
        images,
        labels,
        norm,
        batch_size=batch_size,
        train=False,
        device=device,
        seed=seed,
        dist=dist,
        channels_last=False,
    )
    return EvalSet(description, {None: loader}, tta_loaders={None: loader} if tta else {})


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
    return crop_loaders(folder.val_files, folder.val_labels, crops, resizes, batch_size=batch_size, seed=seed, **loader)


def crop_loaders(
    files, labels, crops, resizes, *, batch_size: int, seed: int = 0, transform=CenterCrop, **loader
) -> dict:
    """{crop: StreamLoader} over ``files``, each resized then cut by ``transform`` (the
    centre crop, or :class:`~idresnet.data.transforms.TenCrop`), un-augmented."""
    tests = {}
    for crop, resize in zip(crops, resizes):
        data = FileDataset(files, labels, transform(crop, resize), seed=seed, random=False)
        tests[crop] = StreamLoader(data, batch_size=batch_size, train=False, seed=seed, **loader)
    return tests


def tta_loaders(tta: str | None, tests: dict, folder, crops, resizes, *, batch_size: int, **loader) -> dict:
    """The test loaders of a TTA: the single-crop ones for ``flip``; for ``tencrop``, ten
    views of each val image, in batches of a tenth of the images (as many crops as a
    single-crop batch has images)."""
    if tta != "tencrop":
        return tests if tta else {}
    return crop_loaders(
        folder.val_files,
        folder.val_labels,
        crops,
        resizes,
        batch_size=max(1, batch_size // TenCrop.VIEWS),
        transform=TenCrop,
        **loader,
    )


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
