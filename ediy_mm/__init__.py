"""ediy_mm: E-DIY region-level self-supervised pre-training for OpenMMLab.

Importing the package registers its modules into mmpretrain's registries,
makes mmengine load its own checkpoints on torch >= 2.6 without turning off
``weights_only`` (see :mod:`ediy_mm.utils.safe_checkpoint`), mends mmcv
2.1.0's hue jitter on numpy >= 2 (see :mod:`ediy_mm.utils.numpy2_compat`),
lets a config inherit another package's data loader ``collate_fn``
(see :mod:`ediy_mm.utils.dataloader_scope`) and formats a config's text
once instead of at every log and checkpoint (see
:mod:`ediy_mm.utils.config_text`).
Add it to any mmpretrain or mmdet config with::

    custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)
"""
from .utils import (install_config_text_cache, install_dataloader_scope_fix,
                    install_numpy2_compat, install_safe_checkpoint_loading)
from .version import __version__, version_info

install_safe_checkpoint_loading()
install_numpy2_compat()
install_dataloader_scope_fix()
install_config_text_cache()

from . import datasets, engine, models  # noqa: E402,F401

__all__ = ['__version__', 'datasets', 'engine', 'models', 'version_info']
