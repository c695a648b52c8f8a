"""Shared test setup."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """Tests use tiny tensors: intra-op threads only add contention (10-100x slower on a loaded
    machine). Training jobs set their own thread count from the config."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
