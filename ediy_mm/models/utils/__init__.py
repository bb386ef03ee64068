from .momentum_target import (MomentumTarget, MomentumTargetMixin,
                              require_momentum_hook)
from .photometric_preprocessor import PhotometricDataPreprocessor
from .process_random import draw_for_this_process

__all__ = [
    'MomentumTarget', 'MomentumTargetMixin', 'PhotometricDataPreprocessor',
    'require_momentum_hook', 'draw_for_this_process'
]
