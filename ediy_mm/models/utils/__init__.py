from .momentum_target import (MomentumTarget, MomentumTargetMixin,
                              optimizer_step_progress, stepping_optim_wrapper)
from .photometric_preprocessor import PhotometricDataPreprocessor
from .process_random import draw_for_this_process

__all__ = [
    'MomentumTarget', 'MomentumTargetMixin', 'PhotometricDataPreprocessor',
    'draw_for_this_process', 'optimizer_step_progress',
    'stepping_optim_wrapper'
]
