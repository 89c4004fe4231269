"""The validation split (data/validation.py): balanced, seeded, disjoint, its limits."""

import numpy as np
import pytest
import torch

from idresnet.data.validation import digest, hold_out
from idresnet.errors import ConfigError

CLASSES = ["a", "b", "c", "d"]


def labels(counts=(30, 12, 25, 40), seed=0):
    """Shuffled labels with ``counts[c]`` images of class c."""
    out = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(seed).permutation(out)


def test_the_split_is_class_balanced_disjoint_and_whole():
    y = labels()
    split = hold_out(y, 20, CLASSES, seed=0)
    assert np.bincount(y[split.held], minlength=4).tolist() == [5, 5, 5, 5]  # 20 / 4 classes, not 20 / 107 of each
    assert len(np.intersect1d(split.held, split.kept)) == 0
    assert np.array_equal(np.union1d(split.held, split.kept), np.arange(len(y)))
    assert np.all(np.diff(split.held) > 0) and np.all(np.diff(split.kept) > 0)  # sorted
    record = split.record
    assert (record["val_split"], record["per_class"], record["num_classes"], record["train_images"]) == (20, 5, 4, 107)
    assert record["indices"] == split.held.tolist() and record["sha256"] == digest(split.held)


def test_the_split_is_a_function_of_the_seed_and_labels_only():
    y = labels()
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    first = hold_out(y, 20, CLASSES, seed=3)
    assert torch.equal(torch.get_rng_state(), torch_state)  # draws nothing from the run's generators
    assert np.array_equal(np.random.get_state()[1], numpy_state[1]) and np.random.get_state()[2] == numpy_state[2]
    np.random.seed(123)
    torch.manual_seed(123)  # whatever the global generators hold, the same split
    again = hold_out(y, 20, CLASSES, seed=3)
    assert np.array_equal(first.held, again.held) and first.record == again.record
    other = hold_out(y, 20, CLASSES, seed=4)
    assert not np.array_equal(first.held, other.held) and other.record["sha256"] != first.record["sha256"]
    # class c's images come from its own stream: a class's draw does not depend on another's size
    more = labels(counts=(30, 12, 25, 80))
    a = hold_out(y, 20, CLASSES, seed=3)
    b = hold_out(more, 20, CLASSES, seed=3)
    assert ranks(y, a.held, 0) == ranks(more, b.held, 0)  # class a: the same 5 of its 30 images


def ranks(ys, held, c) -> list[int]:
    """Which of class c's images (by their order in ``ys``) are held out."""
    of_class = np.flatnonzero(ys == c).tolist()
    return sorted(of_class.index(i) for i in held if ys[i] == c)


@pytest.mark.parametrize(
    "size, text",
    [
        (10, "invalid val_split 10: class-balanced, it must be a multiple of the 4 classes (val_split/4 images of "
         "each), at most 44"),
        (48, "invalid val_split 48: 12 images of each of the 4 classes, but class 'b' has 12 training images; at "
         "most 11 of each can be held out (val_split <= 44)"),
    ],
)  # fmt: skip
def test_a_split_the_classes_cannot_give_is_one_line_naming_the_limit(size, text):
    with pytest.raises(ConfigError) as err:
        hold_out(labels(), size, CLASSES, seed=0)
    assert str(err.value) == text and "\n" not in str(err.value)


def test_the_limit_leaves_every_class_one_image_to_train_on():
    y = labels()
    split = hold_out(y, 44, CLASSES, seed=0)  # the limit the message names
    assert np.bincount(y[split.kept], minlength=4).tolist() == [19, 1, 14, 29]
