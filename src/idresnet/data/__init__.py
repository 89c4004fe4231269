"""Datasets and the device-side loader.

``load_dataset`` returns an :class:`ImageDataset` of uint8 arrays (CIFAR-10/100 from
the official archives or an image folder, a generic image folder, or a synthetic
set); :class:`DeviceLoader` turns one split into augmented, normalised batches on
the training device; :func:`fingerprint` and :func:`locate` serve resuming. See
docs/data.md.
"""

from idresnet.data.cache import default_cache_dir
from idresnet.data.dataset import ImageDataset
from idresnet.data.identity import fingerprint, locate
from idresnet.data.imagenet import FileDataset, load_imagenet
from idresnet.data.load import load_dataset
from idresnet.data.loader import DeviceLoader
from idresnet.data.sources import ALL_DATASETS, DATASETS, STREAMED
from idresnet.data.stream import CorruptImageWarning, StreamLoader

__all__ = [
    "ALL_DATASETS",
    "DATASETS",
    "STREAMED",
    "CorruptImageWarning",
    "DeviceLoader",
    "FileDataset",
    "ImageDataset",
    "StreamLoader",
    "default_cache_dir",
    "fingerprint",
    "load_dataset",
    "load_imagenet",
    "locate",
]
