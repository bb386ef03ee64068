from .numpy2_compat import adjust_hue, install_numpy2_compat
from .random_state import preserved_random_state
from .safe_checkpoint import (MMENGINE_CHECKPOINT_GLOBALS,
                              UnsafeCheckpointError,
                              install_safe_checkpoint_loading)

__all__ = [
    'MMENGINE_CHECKPOINT_GLOBALS', 'UnsafeCheckpointError', 'adjust_hue',
    'install_numpy2_compat', 'install_safe_checkpoint_loading',
    'preserved_random_state'
]
