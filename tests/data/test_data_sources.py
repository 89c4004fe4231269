"""What each dataset must be given: one rule, checked alike by the config, load_dataset,
load_imagenet and idresnet reproduce (issue #24: four places had their own)."""

import pytest

from idresnet.data import load_dataset, load_imagenet
from idresnet.data.sources import ALL_DATASETS, DATASETS, STREAMED, check_data
from idresnet.errors import ConfigError, DatasetError
from idresnet.training import TrainConfig
from idresnet.training.config import FIELDS


def test_the_names_have_one_owner():
    assert ALL_DATASETS == DATASETS + STREAMED and FIELDS["dataset"].metadata["choices"] == ALL_DATASETS


@pytest.mark.parametrize(
    "dataset, data, flag, message",
    [
        ("synthetic", "x", None, "dataset 'synthetic' is generated and takes no data path"),
        ("synthetic", "x", "--data", "dataset 'synthetic' is generated and takes no --data"),
        ("folder", None, None, "dataset 'folder' needs a data path (an image folder (train/<class>/"),
        ("folder", None, "--data", "dataset 'folder' needs --data PATH, an image folder"),
        ("imagenet", None, None, "dataset 'imagenet' needs --data DIR, a folder with train/<class>/ and val/"),
        ("imagenet", None, "--imagenet-data", "needs --imagenet-data DIR, a folder with train/<class>/"),
    ],
)
def test_what_a_dataset_needs(dataset, data, flag, message):
    with pytest.raises(DatasetError) as err:
        check_data(dataset, data, flag)
    assert str(err.value).startswith(message) or message in str(err.value)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_takes_a_path_or_none(dataset):
    check_data(dataset, None, "--data")
    check_data(dataset, "/some/archive", "--data")


def test_every_caller_applies_the_rule():
    with pytest.raises(DatasetError, match="takes no data path"):
        load_dataset("synthetic", "x")
    with pytest.raises(DatasetError, match="needs --data DIR"):
        load_imagenet(None)
    with pytest.raises(ConfigError, match="dataset 'folder' needs --data PATH"):  # at once, not when loading
        TrainConfig(model="preact_resnet20", dataset="folder")
    with pytest.raises(ConfigError, match="dataset 'imagenet' needs --data DIR"):
        TrainConfig(model="imagenet_resnet18", dataset="imagenet")
