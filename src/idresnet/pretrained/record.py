"""The record that converted weights carry: a :class:`~idresnet.weights.WeightsRecord`.

The same record as the weights of a training run, so ``idresnet eval``, ``export``,
``predict`` and ``create_model(pretrained=...)`` read both alike, plus ``class_ids``
(ImageNet wnids), ``input`` (crop, resize) and ``source`` (format, file name, sha256,
the source's own architecture name and the layout chosen for it).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from idresnet.data.cifar import CIFAR10_CLASSES
from idresnet.networks.preprocessing import CIFAR_SIZE, IMAGENET_CROP, IMAGENET_MEAN, IMAGENET_STD, eval_resize
from idresnet.weights import WeightsRecord

# Datasets the converters know: class count and input geometry of each source.
DATASETS = {
    "imagenet": {"num_classes": 1000, "crop": IMAGENET_CROP, "resize": eval_resize(IMAGENET_CROP)},
    "cifar10": {"num_classes": 10, "crop": CIFAR_SIZE, "resize": CIFAR_SIZE},
    "cifar100": {"num_classes": 100, "crop": CIFAR_SIZE, "resize": CIFAR_SIZE},
}
IMAGENET_NORM = (IMAGENET_MEAN, IMAGENET_STD)


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
        return list(CIFAR10_CLASSES), None
    return None, None


def make_record(
    model: str, model_kwargs: dict, dataset: str, mean, std, source: dict, num_classes: int
) -> WeightsRecord:
    """The record of converted weights (see the module docstring)."""
    d = DATASETS[dataset]
    names, ids = class_names(dataset) if num_classes == d["num_classes"] else (None, None)
    crop, resize = d["crop"], d["resize"]
    imagenet = {"train_crop": IMAGENET_CROP, "eval_crops": [crop], "eval_resize": [resize]}
    return WeightsRecord(
        model=model,
        model_kwargs=model_kwargs,
        num_classes=num_classes,
        classes=names,
        class_ids=ids,
        dataset=dataset,
        image_shape=[crop, crop, 3],
        normalization={"kind": "channel", "mean": list(mean), "std": list(std), "pixel_mean": None},
        input={"crop": crop, "resize": resize, "interpolation": "bilinear"},
        dataset_args={"dataset": dataset, **(imagenet if dataset == "imagenet" else {})},
        source=source,
    )
