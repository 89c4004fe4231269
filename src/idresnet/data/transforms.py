"""Per-image transforms of the streaming ImageNet path, in Pillow and numpy (no torchvision).

Training (one of two):

- ``scale``: the paper's scale augmentation (He et al. 2016, Sec. 5, as fb.resnet.torch's
  ``RandomScale`` + ``RandomCrop`` + ``HorizontalFlip``): resize so that the shorter side
  is an integer drawn uniformly from ``scale_range`` ([256, 480]), take a random
  ``crop`` x ``crop`` (224) window, flip horizontally with probability 1/2.
- ``rrc``: "scale + aspect ratio" (Table 5's last row; Szegedy et al. 2015, the random-
  resized crop of fb.resnet.torch and torchvision): a window of 8% to 100% of the
  image's area with an aspect ratio drawn log-uniformly from [3/4, 4/3] (10 tries, then
  the central square), resized to ``crop`` x ``crop``, flipped with probability 1/2.

Evaluation: resize the shorter side to ``resize`` and take the central ``crop`` window:
224 of 256 (the usual single crop), or the paper's 320 of 320 (the default sizes:
:func:`idresnet.networks.preprocessing.eval_resize`).

Resizing is bilinear with Pillow's antialiasing filter. A resize followed by a crop is
done as one ``Image.resize(box=...)`` call that computes only the crop's pixels: the
same as resizing the whole image and cropping it, up to rounding (pixels differ by at
most 1 of 255, tested), and much cheaper for the paper's 480-pixel scales. Every random
draw comes from the ``rng`` passed in, which the dataset seeds from ``(seed, epoch,
index)``: an image's augmentation does not depend on worker processes, ranks or the
batch it lands in.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from idresnet.errors import UsageError, choices_error
from idresnet.seeding import SAMPLE, numpy_rng

AUGMENTATIONS = ("scale", "rrc")
RRC_AREA = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)
RESAMPLE = Image.BILINEAR


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's draws in one epoch (:mod:`idresnet.seeding`)."""
    return numpy_rng(seed, SAMPLE, epoch, index)


def resized_crop(img: Image.Image, size: tuple[int, int], x0: int, y0: int, crop: int) -> Image.Image:
    """``img`` resized to ``size`` (w, h), then the ``crop`` window at (x0, y0): one call."""
    w, h = img.size
    sx, sy = w / size[0], h / size[1]
    box = (x0 * sx, y0 * sy, (x0 + crop) * sx, (y0 + crop) * sy)
    return img.resize((crop, crop), RESAMPLE, box=box)


def shorter_side_size(w: int, h: int, short: int) -> tuple[int, int]:
    """(w, h) scaled so that the shorter side is ``short`` (the longer one rounded)."""
    if w <= h:
        return short, max(1, round(h * short / w))
    return max(1, round(w * short / h)), short


class ScaleAugment:
    """The paper's training augmentation; see the module docstring."""

    def __init__(self, crop: int, scale_range=(256, 480)):
        lo, hi = scale_range
        if not crop <= lo <= hi:
            raise UsageError(f"scale_range {list(scale_range)} must satisfy train_crop {crop} <= low <= high")
        self.crop, self.lo, self.hi = crop, lo, hi

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        short = int(rng.integers(self.lo, self.hi + 1))
        size = shorter_side_size(*img.size, short)
        x0 = int(rng.integers(0, size[0] - self.crop + 1))
        y0 = int(rng.integers(0, size[1] - self.crop + 1))
        out = resized_crop(img, size, x0, y0, self.crop)
        return out.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out


class RandomResizedCrop:
    """Scale and aspect-ratio augmentation; see the module docstring."""

    def __init__(self, crop: int, area=RRC_AREA, ratio=RRC_RATIO, tries: int = 10):
        self.crop, self.area, self.tries = crop, area, tries
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def box(self, w: int, h: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(x0, y0, width, height) of the window in the source image."""
        for _ in range(self.tries):
            target = w * h * rng.uniform(*self.area)
            aspect = math.exp(rng.uniform(*self.log_ratio))
            cw = round(math.sqrt(target * aspect))
            ch = round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch
        side = min(w, h)  # fallback: the central square
        return (w - side) // 2, (h - side) // 2, side, side

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        x0, y0, cw, ch = self.box(*img.size, rng)
        out = img.resize((self.crop, self.crop), RESAMPLE, box=(x0, y0, x0 + cw, y0 + ch))
        return out.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out


class CenterCrop:
    """Evaluation: shorter side to ``resize``, then the central ``crop`` window."""

    def __init__(self, crop: int, resize: int):
        if resize < crop:
            raise UsageError(f"eval resize {resize} is smaller than its crop {crop}")
        self.crop, self.resize = crop, resize

    def __call__(self, img: Image.Image, rng=None) -> Image.Image:
        size = shorter_side_size(*img.size, self.resize)
        x0 = (size[0] - self.crop) // 2
        y0 = (size[1] - self.crop) // 2
        return resized_crop(img, size, x0, y0, self.crop)


def train_transform(kind: str, crop: int, scale_range=(256, 480)):
    if kind == "scale":
        return ScaleAugment(crop, scale_range)
    if kind == "rrc":
        return RandomResizedCrop(crop)
    raise choices_error("augmentation", kind, AUGMENTATIONS)


def to_array(img: Image.Image) -> np.ndarray:
    """An RGB image as a uint8 (H, W, 3) array."""
    return np.asarray(img.convert("RGB") if img.mode != "RGB" else img, dtype=np.uint8)
