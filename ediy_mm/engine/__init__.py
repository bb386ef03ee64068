from .cpu_ddp import CPUDistributedDataParallel
from .hooks import *  # noqa: F401,F403
from .optimizers import LARC, larc_gradient

__all__ = ['CPUDistributedDataParallel', 'LARC', 'larc_gradient']
