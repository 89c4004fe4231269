"""What a network expects of its input: size, crop and normalisation (timm's ``pretrained_cfg``).

ImageNet networks are fed as fb.resnet.torch and torchvision feed them: the ImageNet
channel mean and std (in [0, 1]), a 224 crop of the image resized to 256 (crop
fraction 0.875) for evaluation at the training size, and the paper's 320 crop of the
image resized to 320 (Table 5). CIFAR networks take 32x32 images whose mean and std are
computed from the training set when a run starts (recorded with its weights), so a
fresh CIFAR network has none.
"""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CROP = 224  # the training (and first evaluation) crop
IMAGENET_TEST_CROP = 320  # the paper's larger evaluation crop (Table 5)
EVAL_CROP_FRACTION = 0.875  # a crop of the training size is taken from crop / 0.875: 224 of 256
CIFAR_SIZE = 32


def eval_resize(crop: int, train_crop: int = IMAGENET_CROP) -> int:
    """The default shorter side for an evaluation crop: the crop at the training size is
    the usual 224-of-256 (ratio 0.875); a larger crop (the paper's 320) is taken from an
    image resized to exactly that size."""
    return round(crop / EVAL_CROP_FRACTION) if crop <= train_crop else crop


def default_cfg(name: str, family: str, num_classes: int, in_channels: int = 3) -> dict:
    """timm's ``pretrained_cfg`` of a fresh network: input size, crop and normalisation as
    idresnet trains and evaluates it."""
    if family == "cifar":
        return {
            "architecture": name,
            "input_size": (in_channels, CIFAR_SIZE, CIFAR_SIZE),
            "crop_pct": 1.0,
            "mean": None,
            "std": None,
            "num_classes": num_classes,
            "classes": None,
        }
    return {
        "architecture": name,
        "input_size": (in_channels, IMAGENET_CROP, IMAGENET_CROP),
        "crop_pct": EVAL_CROP_FRACTION,
        "test_input_size": (in_channels, IMAGENET_TEST_CROP, IMAGENET_TEST_CROP),
        "interpolation": "bilinear",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "num_classes": num_classes,
        "classes": None,
    }
