"""The datasets idresnet knows, and what each must be given: the one rule that the config,
``load_dataset``, ``load_imagenet`` and ``idresnet reproduce`` check.

- ``cifar10``, ``cifar100``: a path is optional (the cache, then the official download);
- ``folder``: a path to an image folder or its tarball is required;
- ``synthetic``: generated, it takes no path;
- ``imagenet``: streamed from disk (:data:`STREAMED`), a folder is required: it is never
  downloaded.
"""

from __future__ import annotations

from idresnet.errors import DatasetError

DATASETS = ("cifar10", "cifar100", "folder", "synthetic")  # loaded into memory (load_dataset)
STREAMED = ("imagenet",)  # streamed from disk by worker processes (load_imagenet, StreamLoader)
ALL_DATASETS = DATASETS + STREAMED


def needs_data(dataset: str, flag: str | None = None) -> str:
    """What a dataset that requires a path must be given, for an error message: the flag
    ``flag`` (the command line) or a data path (the Python API)."""
    if dataset in STREAMED:  # a folder on disk whatever the caller: say how the command line takes it
        return (
            f"{flag or '--data'} DIR, a folder with train/<class>/ and val/<class>/ images (ImageNet is not downloaded)"
        )
    what = "an image folder (train/<class>/, test/<class>/) or its tarball"
    return f"{flag} PATH, {what}" if flag else f"a data path ({what})"


def check_data(dataset: str, data, flag: str | None = None) -> None:
    """A one-line DatasetError when ``data`` (a path or None) does not suit ``dataset``;
    ``flag``: how the user gives it (``--data``), None from the Python API."""
    if dataset == "synthetic" and data is not None:
        raise DatasetError(f"dataset 'synthetic' is generated and takes no {flag or 'data path'}")
    if data is None and (dataset in STREAMED or dataset == "folder"):
        raise DatasetError(f"dataset {dataset!r} needs {needs_data(dataset, flag)}")
