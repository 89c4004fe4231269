"""Fixtures of the training tests: a tiny, fast run on the synthetic dataset."""

import pytest
from trainhelpers import TINY

from idresnet.training import TrainConfig


@pytest.fixture
def tiny(tmp_path):
    """A TrainConfig of TINY with changes, its run folder under tmp_path."""

    def make(name="run", **changes):
        return TrainConfig(**{**TINY, "out": str(tmp_path / name), **changes})

    return make


@pytest.fixture(scope="session")
def imagenet_data(tmp_path_factory):
    """The tiny ImageNet-layout folder (see trainhelpers.IMAGENET_TINY), built once."""
    from trainhelpers import imagenet_folder

    return imagenet_folder(tmp_path_factory.mktemp("imagenet") / "data")


@pytest.fixture
def tiny_imagenet(tmp_path, imagenet_data):
    """A TrainConfig of IMAGENET_TINY with changes, its run folder under tmp_path."""
    from trainhelpers import IMAGENET_TINY

    def make(name="run", **changes):
        return TrainConfig(**{**IMAGENET_TINY, "data": str(imagenet_data), "out": str(tmp_path / name), **changes})

    return make
