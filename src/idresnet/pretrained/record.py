"""The record that converted weights carry in their safetensors metadata.

The same keys as the weights of a training run (``model``, ``model_kwargs``,
``num_classes``, ``classes``, ``dataset``, ``image_shape``, ``normalization``,
``dataset_args``), so ``idresnet eval``, ``export``, ``predict`` and
``create_model(pretrained=...)`` read both alike, plus ``class_ids`` (ImageNet wnids),
``input`` (crop, resize) and ``source`` (format, file name, sha256, the source's own
architecture name and the layout chosen for it).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import idresnet
from idresnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD

# Datasets the converters know: normalisation in [0, 1] and input geometry of each source.
DATASETS = {
    "imagenet": {"num_classes": 1000, "image_shape": [224, 224, 3], "crop": 224, "resize": 256},
    "cifar10": {"num_classes": 10, "image_shape": [32, 32, 3], "crop": 32, "resize": 32},
    "cifar100": {"num_classes": 100, "image_shape": [32, 32, 3], "crop": 32, "resize": 32},
}


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(wnids, names)`` of the 1000 ImageNet classes, in the standard (sorted wnid) order."""
    text = resources.files("idresnet.pretrained").joinpath("imagenet_classes.txt").read_text()
    rows = [line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows)


def class_names(dataset: str) -> tuple[list | None, list | None]:
    """``(names, ids)`` of a dataset's classes where known (None otherwise)."""
    if dataset == "imagenet":
        wnids, names = imagenet_classes()
        return list(names), list(wnids)
    if dataset == "cifar10":
        from idresnet.data.cifar import CIFAR10_CLASSES

        return list(CIFAR10_CLASSES), None
    return None, None


def make_record(
    model: str, model_kwargs: dict, dataset: str, mean, std, source: dict, num_classes: int, geometry=None
) -> dict:
    """The metadata of converted weights (see the module docstring). ``geometry``: the
    source's own ``crop``, ``resize`` and ``interpolation``, where they differ from the
    dataset's usual ones (:data:`DATASETS`)."""
    d = {"interpolation": "bilinear", **DATASETS[dataset], **(geometry or {})}
    names, ids = class_names(dataset) if num_classes == d["num_classes"] else (None, None)
    return {
        "format": "idresnet-weights",
        "model": model,
        "model_kwargs": model_kwargs,
        "num_classes": num_classes,
        "classes": names,
        "class_ids": ids,
        "dataset": dataset,
        "image_shape": d["image_shape"],
        "normalization": {"kind": "channel", "mean": list(mean), "std": list(std), "pixel_mean": None},
        "input": {"crop": d["crop"], "resize": d["resize"], "interpolation": d["interpolation"]},
        "dataset_args": {
            "dataset": dataset,
            **(
                {"train_crop": 224, "eval_crops": [d["crop"]], "eval_resize": [d["resize"]]}
                if dataset == "imagenet"
                else {}
            ),
        },
        "source": source,
        "idresnet_version": idresnet.__version__,
    }


IMAGENET_NORM = (IMAGENET_MEAN, IMAGENET_STD)


def input_geometry(meta: dict) -> tuple[int, int]:
    """``(crop, resize)`` at which weights expect images: their record's ``input``, else
    the run's first evaluation crop (ImageNet) or its image size (CIFAR, folders)."""
    if "input" in meta:
        return int(meta["input"]["crop"]), int(meta["input"]["resize"])
    rec = meta.get("dataset_args") or {}
    if rec.get("eval_crops"):
        from idresnet.data.transforms import eval_resize

        crop = int(rec["eval_crops"][0])
        resize = (rec.get("eval_resize") or [eval_resize(crop, rec.get("train_crop", 224))])[0]
        return crop, int(resize)
    shape = meta.get("image_shape") or [224, 224, 3]
    return int(shape[0]), int(shape[0])


def model_cfg(meta: dict, num_classes: int, in_channels: int = 3) -> dict:
    """timm's ``pretrained_cfg`` from a weights record."""
    crop, resize = input_geometry(meta)
    norm = meta.get("normalization") or {}
    return {
        "architecture": meta.get("model"),
        "input_size": (in_channels, crop, crop),
        "crop_pct": crop / resize,
        "interpolation": "bilinear",
        "mean": tuple(norm.get("mean") or ()) or None,
        "std": tuple(norm.get("std") or ()) or None,
        "num_classes": num_classes,
        "classes": meta.get("classes"),
        "class_ids": meta.get("class_ids"),
        "source": meta.get("source"),
    }
