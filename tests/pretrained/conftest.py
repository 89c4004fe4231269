import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on small shared machines spinning OpenMP threads make runs crawl."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
