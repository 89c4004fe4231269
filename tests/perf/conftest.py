import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets gain nothing from threads, and on a busy machine each parallel kernel
    can wait for a descheduled OpenMP thread: run the perf tests on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
