"""The ImageNet transforms (Pillow + numpy): shapes, the paper's geometry, determinism."""

import math

import numpy as np
import pytest
from PIL import Image

from idresnet.data.transforms import (
    CenterCrop,
    RandomResizedCrop,
    ScaleAugment,
    resized_crop,
    sample_rng,
    shorter_side_size,
    to_array,
    train_transform,
)
from idresnet.errors import UsageError
from idresnet.networks.preprocessing import eval_resize


def noise_image(w=75, h=52, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_resized_crop_equals_resize_then_crop():
    img = noise_image(500, 375)
    size = shorter_side_size(500, 375, 300)
    assert size == (400, 300)
    whole = np.asarray(img.resize(size, Image.BILINEAR))
    for x0, y0 in ((0, 0), (37, 21), (176, 76)):
        got = np.asarray(resized_crop(img, size, x0, y0, 224))
        assert np.array_equal(got, whole[y0 : y0 + 224, x0 : x0 + 224])


@pytest.mark.parametrize("w, h, short, crop", [(90, 60, 37, 32), (500, 333, 256, 224), (333, 500, 320, 320)])
def test_resized_crop_matches_up_to_rounding_at_any_scale(w, h, short, crop):
    img = noise_image(w, h)
    size = shorter_side_size(w, h, short)
    whole = np.asarray(img.resize(size, Image.BILINEAR)).astype(int)
    x0, y0 = (size[0] - crop) // 2, (size[1] - crop) // 2
    got = np.asarray(resized_crop(img, size, x0, y0, crop)).astype(int)
    assert np.abs(got - whole[y0 : y0 + crop, x0 : x0 + crop]).max() <= 1


def test_eval_resize_is_the_usual_and_the_papers():
    assert eval_resize(224, 224) == 256  # 224 of 256
    assert eval_resize(320, 224) == 320  # the paper's 320 of 320
    assert eval_resize(32, 32) == 37


def test_center_crop_is_resize_then_central_window():
    img = noise_image(90, 60)
    out = CenterCrop(32, 37)(img)
    assert out.size == (32, 32)
    whole = np.asarray(img.resize(shorter_side_size(90, 60, 37), Image.BILINEAR))  # 56 x 37
    diff = np.asarray(out).astype(int) - whole[2:34, 12:44]
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.01
    with pytest.raises(UsageError, match="smaller than its crop"):
        CenterCrop(40, 32)


@pytest.mark.parametrize("kind", ["scale", "rrc"])
def test_train_transforms_give_the_crop_and_are_deterministic_per_seed(kind):
    img = noise_image()
    t = train_transform(kind, 32, (36, 64))
    a = to_array(t(img, sample_rng(0, 3, 7)))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, to_array(t(img, sample_rng(0, 3, 7))))
    others = [to_array(t(img, sample_rng(*key))) for key in ((1, 3, 7), (0, 4, 7), (0, 3, 8))]
    assert all(not np.array_equal(a, o) for o in others)  # seed, epoch and index all matter


def test_scale_augmentation_is_a_crop_of_the_rescaled_image_maybe_flipped():
    img = noise_image(60, 40)
    t = ScaleAugment(32, (40, 40))  # shorter side always 40: the image is only cropped
    flips = set()
    for i in range(20):
        rng = sample_rng(0, 0, i)
        out = np.asarray(t(img, rng))
        src = np.asarray(img)
        found = [
            (y, x, f)
            for y in range(9)
            for x in range(29)
            for f in (False, True)
            if np.array_equal(out[:, ::-1] if f else out, src[y : y + 32, x : x + 32])
        ]
        assert len(found) == 1
        flips.add(found[0][2])
    assert flips == {False, True}
    with pytest.raises(UsageError, match="train_crop 224 <= low"):
        ScaleAugment(224, (200, 480))


def test_random_resized_crop_boxes_follow_area_and_ratio():
    t = RandomResizedCrop(32)
    for i in range(200):
        x0, y0, w, h = t.box(80, 60, sample_rng(0, 0, i))
        assert 0 <= x0 and x0 + w <= 80 and 0 <= y0 and y0 + h <= 60
        if (w, h) != (60, 60):  # not the fallback
            assert 0.08 * 4800 * 0.9 <= w * h <= 4800
            assert 3 / 4 * 0.85 <= w / h <= 4 / 3 / 0.85
    assert RandomResizedCrop(32, tries=0).box(80, 60, sample_rng(0, 0, 0)) == (10, 0, 60, 60)
    assert math.isclose(math.exp(t.log_ratio[1]), 4 / 3)


def test_unknown_augmentation():
    with pytest.raises(UsageError, match="valid: scale, rrc"):
        train_transform("mixup", 224)


def test_to_array_converts_modes():
    assert to_array(noise_image().convert("L")).shape == (52, 75, 3)
    assert to_array(noise_image().convert("RGBA")).shape == (52, 75, 3)
