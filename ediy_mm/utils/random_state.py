import contextlib
import random
from typing import Iterator

import numpy as np
import torch

__all__ = ['preserved_random_state']


@contextlib.contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run a block without advancing the global random generators.

    Python's ``random``, numpy's global generator and torch's CPU and CUDA
    default generators are saved on entry and restored on exit, so a check
    that draws random numbers (for example one run of the data pipeline)
    does not change what training draws afterwards.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_state = (
        torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
