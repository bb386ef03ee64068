import os
import random

import numpy as np
import torch
from mmengine.registry import FUNCTIONS
from torch.utils.data import get_worker_info

__all__ = ['epoch_seeded_worker_init_fn']


@FUNCTIONS.register_module()
def epoch_seeded_worker_init_fn(worker_id: int) -> None:
    """Seed a data loader worker from the loader's per-epoch base seed.

    mmengine's default ``worker_init_fn`` seeds worker ``w`` of rank ``r``
    with ``seed + num_workers * r + w`` every time workers start: with
    ``persistent_workers=False`` every epoch then replays the same random
    augmentation stream. This one seeds numpy, ``random`` and torch from
    the seed torch gives the worker (``base_seed + worker_id``, where the
    loader draws ``base_seed`` from the main process's torch generator at
    each epoch) mixed with the rank (``RANK`` of the launcher), so that

    - every epoch, worker and rank draws a different stream;
    - the streams are a function of the run's seed and the epoch. With
      :class:`~ediy_mm.engine.hooks.RandomStateHook` restoring the torch
      generator, a resumed epoch-based run draws exactly the augmentations
      of an uninterrupted one (with ``persistent_workers=False``).

    Use it in a config::

        train_dataloader = dict(
            persistent_workers=False,
            worker_init_fn=dict(type='epoch_seeded_worker_init_fn'))

    Args:
        worker_id (int): Index of the worker (unused: torch's worker seed
            already includes it).
    """
    info = get_worker_info()
    rank = int(os.environ.get('RANK', 0))
    seed = int(
        np.random.SeedSequence([info.seed % 2**63, rank]).generate_state(1)[0])
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
