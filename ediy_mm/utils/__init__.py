from .cli import doc_parser, write_json
from .config_text import install_config_text_cache
from .dataloader_scope import install_dataloader_scope_fix
from .numpy2_compat import adjust_hue, install_numpy2_compat
from .random_state import preserved_random_state
from .safe_checkpoint import (MMENGINE_CHECKPOINT_GLOBALS, NotACheckpointError,
                              UnsafeCheckpointError, check_checkpoint_file,
                              install_safe_checkpoint_loading)

__all__ = [
    'MMENGINE_CHECKPOINT_GLOBALS', 'NotACheckpointError',
    'UnsafeCheckpointError', 'adjust_hue', 'check_checkpoint_file',
    'doc_parser', 'install_config_text_cache', 'install_dataloader_scope_fix',
    'install_numpy2_compat', 'install_safe_checkpoint_loading',
    'preserved_random_state', 'write_json'
]
