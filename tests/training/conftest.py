"""Fixtures of the training tests: a tiny, fast run on the synthetic dataset."""

import pytest
import torch

from idresnet.training import TrainConfig
from trainhelpers import TINY


@pytest.fixture
def tiny(tmp_path):
    """A TrainConfig of TINY with changes, its run folder under tmp_path."""
    def make(name="run", **changes):
        return TrainConfig(**{**TINY, "out": str(tmp_path / name), **changes})
    return make


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: CI machines are small and shared, and OpenMP threads that
    spin while other processes hold the cores make tiny runs many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
        return TrainConfig(**{**IMAGENET_TINY, "data": str(imagenet_data), "out": str(tmp_path / name),
                              **changes})
    return make
