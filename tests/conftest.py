import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for every test: the nets are tiny, CI machines small and shared,
    and OpenMP threads that spin while other processes hold the cores make runs crawl."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
