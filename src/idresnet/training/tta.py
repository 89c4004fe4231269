"""Test-time augmentation: options people expect, labelled as not the paper's protocol.

The paper reports single-crop errors (CIFAR: each 32x32 test image as it is; ImageNet,
Table 5: a 224 crop of 256 and a 320 crop of 320). Here, beside them:

- ``flip``: the mean of the logits of the image and of its horizontal mirror (the usual
  CIFAR option; any dataset).
- ``tencrop``: fb.resnet.torch's 10-crop, the mean of the logits of the centre and four
  corner windows of the resized image and of their mirrors
  (:class:`idresnet.data.transforms.TenCrop`); streamed (imagenet) data only.

Logits, not softmax probabilities, are averaged, as fb.resnet.torch does (its
``computeScore`` sums the crops' outputs, before any softmax: the same ranking); the
loss reported is the cross-entropy of the averaged logits. A TTA number always has a
name of its own (``test_error_flip`` in metrics.csv, ``final_tta`` in status.json, the
``tta`` object of ``idresnet eval --json``), never the single-crop ``test_error``.
"""

from __future__ import annotations

import torch

from idresnet.data.transforms import TenCrop

TTA_METHODS = ("none", "flip", "tencrop")
STREAMED_ONLY = ("tencrop",)  # needs the decoded image, not a 32x32 array
LABELS = {
    "flip": "flip TTA: mean logits of the image and its mirror",
    "tencrop": "10-crop TTA: mean logits of fb.resnet.torch's 10 crops",
}
NOT_THE_PAPERS = "not the paper's single-crop protocol"


def flip_average(model, x: torch.Tensor) -> torch.Tensor:
    """The mean logits of ``x`` and of its horizontal mirror (NCHW: the last axis)."""
    return (model(x).float() + model(x.flip(3)).float()) / 2


def ten_crop_average(model, x: torch.Tensor) -> torch.Tensor:
    """The mean logits over each image's ten views (consecutive in ``x``: a ten-crop loader's batch)."""
    logits = model(x).float()
    return logits.view(-1, TenCrop.VIEWS, logits.shape[1]).mean(1)


PREDICT = {"flip": flip_average, "tencrop": ten_crop_average}


def unavailable(method: str, streamed: bool, dataset: str) -> str | None:
    """Why ``method`` cannot evaluate ``dataset`` (a one-line reason), or None."""
    if method in STREAMED_ONLY and not streamed:
        valid = ", ".join(m for m in TTA_METHODS if m not in STREAMED_ONLY)
        return (
            f"tta {method!r} needs the streamed imagenet dataset (it crops the decoded images); {dataset} "
            f"images are evaluated whole; valid for {dataset}: {valid}"
        )
    return None


def describe(method: str) -> str:
    """What a TTA number is, for the reader of a result."""
    return f"{LABELS[method]}; {NOT_THE_PAPERS}"
