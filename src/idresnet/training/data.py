"""The data of a run: the dataset, its normalisation, a training loader and test loaders.

In-memory datasets (CIFAR, small image folders, synthetic) go to the device once and
are cut there (:class:`~idresnet.data.DeviceLoader`); one test loader. Streamed datasets
(``imagenet``: any ImageNet-layout folder) are decoded by DataLoader worker processes
(:class:`~idresnet.data.stream.StreamLoader`) with the ImageNet mean and std; one test
loader per evaluation crop, the first being the run's test error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from idresnet.data import fingerprint
from idresnet.training import distributed, runtime
from idresnet.training.recipe import STREAMING

MAX_AUTO_WORKERS = 8


@dataclass
class RunData:
    name: str
    description: str
    classes: list
    train_count: int
    test_count: int
    image_shape: list
    norm: dict
    train_loader: object
    test_loaders: dict  # eval crop (None for in-memory data) -> loader; the first is the headline
    streaming: bool = False
    loading: dict = field(default_factory=dict)  # how a streamed dataset is read, for run_info
    fingerprint: dict = field(default_factory=dict)  # idresnet.data.fingerprint: what a resume must find

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def skipped(self) -> int:
        """Unreadable images skipped so far by this process's loaders."""
        loaders = [self.train_loader, *self.test_loaders.values()]
        return sum(getattr(loader, "skipped", 0) for loader in loaders)


def build_data(cfg, info: distributed.DistInfo, device, channels_last: bool) -> RunData:
    per_process = cfg.batch_size // info.world_size
    if cfg.dataset in STREAMING:
        return _streamed(cfg, info, device, channels_last, per_process)
    ds = runtime.load_data(cfg, info)
    norm = runtime.normalization(ds, cfg.normalization)
    loader = dict(device=device, seed=cfg.seed, info=info, channels_last=channels_last)
    train = runtime.make_loader(ds.train_images, ds.train_labels, norm, batch_size=per_process,
                                train=True, **loader)
    test = runtime.make_loader(ds.test_images, ds.test_labels, norm,
                               batch_size=max(per_process, 256), train=False, **loader)
    return RunData(ds.name, ds.description, list(ds.classes), len(ds.train_labels),
                   len(ds.test_labels), list(ds.image_shape), norm, train, {None: test},
                   fingerprint=fingerprint(ds))


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


def _streamed(cfg, info, device, channels_last, per_process) -> RunData:
    from idresnet.data.imagenet import FileDataset, load_imagenet
    from idresnet.data.stream import StreamLoader
    from idresnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_resize, train_transform

    folder = load_imagenet(cfg.data, train_size=cfg.train_size, test_size=cfg.test_size, seed=cfg.seed)
    workers = auto_workers(cfg.workers)
    norm = {"kind": "channel", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "pixel_mean": None}
    common = dict(device=device, seed=cfg.seed, rank=info.rank, world_size=info.world_size,
                  workers=workers, mean=IMAGENET_MEAN, std=IMAGENET_STD, channels_last=channels_last)
    augment = train_transform(cfg.augmentation, cfg.train_crop, cfg.scale_range)
    train = StreamLoader(FileDataset(folder.train_files, folder.train_labels, augment, seed=cfg.seed),
                         batch_size=per_process, train=True, **common)
    resizes = cfg.eval_resize or [eval_resize(c, cfg.train_crop) for c in cfg.eval_crops]
    tests = val_loaders(folder, cfg.eval_crops, resizes, batch_size=per_process, **common)
    loading = {"workers": workers, "augmentation": cfg.augmentation, "train_crop": cfg.train_crop,
               "scale_range": list(cfg.scale_range) if cfg.augmentation == "scale" else None,
               "eval": [{"crop": c, "resize": r} for c, r in zip(cfg.eval_crops, resizes)]}
    return RunData(cfg.dataset, folder.description, list(folder.classes), len(folder.train_labels),
                   len(folder.val_labels), [cfg.train_crop, cfg.train_crop, 3], norm, train, tests,
                   streaming=True, loading=loading, fingerprint=fingerprint(folder))


def val_loaders(folder, crops, resizes, *, batch_size: int, seed: int = 0, **loader) -> dict:
    """{crop: StreamLoader} over ``folder``'s val images, each resized then centre-cropped."""
    from idresnet.data.imagenet import FileDataset
    from idresnet.data.stream import StreamLoader
    from idresnet.data.transforms import CenterCrop

    tests = {}
    for crop, resize in zip(crops, resizes):
        data = FileDataset(folder.val_files, folder.val_labels, CenterCrop(crop, resize), seed=seed, random=False)
        tests[crop] = StreamLoader(data, batch_size=batch_size, train=False, seed=seed, **loader)
    return tests
