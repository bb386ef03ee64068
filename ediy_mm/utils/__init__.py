from .safe_checkpoint import (MMENGINE_CHECKPOINT_GLOBALS,
                              UnsafeCheckpointError,
                              install_safe_checkpoint_loading)

__all__ = [
    'MMENGINE_CHECKPOINT_GLOBALS', 'UnsafeCheckpointError',
    'install_safe_checkpoint_loading'
]
