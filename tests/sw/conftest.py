"""tests/sw: the tiny-preset torch tests run with one intra-op thread, which is fastest for models
this small and keeps them quick on a busy 2-core machine."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
