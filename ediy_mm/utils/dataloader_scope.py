"""Inherited ``collate_fn`` / ``worker_init_fn`` configs work with the Runner.

A config inheriting ``mmpretrain::...`` (or any other package's config)
gets mmengine's ``_scope_`` tag on every inherited dict that has a
``type``, the data loader's ``collate_fn`` included (mmpretrain's BYOL sets
``collate_fn=dict(type='default_collate')``). ``Runner.build_dataloader``
binds every key of that dict but ``type`` to the function, so the first
batch fails with ``default_collate() got an unexpected keyword argument
'_scope_'``. The function is looked up in mmengine's root ``FUNCTIONS``
registry whatever the tag, so dropping it changes nothing else.
"""
import functools
from typing import Callable

from mmengine.runner import Runner

__all__ = ['install_dataloader_scope_fix']

#: The data loader keys the Runner turns into ``partial(function, **cfg)``.
FUNCTION_KEYS = ('collate_fn', 'worker_init_fn')


def _untagged(build: Callable) -> Callable:
    """Wrap ``Runner.build_dataloader`` to drop the ``_scope_`` tags."""

    @functools.wraps(build)
    def build_dataloader(dataloader, *args, **kwargs):
        if isinstance(dataloader, dict):
            dataloader = dict(dataloader)
            for key in FUNCTION_KEYS:
                cfg = dataloader.get(key)
                if isinstance(cfg, dict) and '_scope_' in cfg:
                    dataloader[key] = {
                        k: v
                        for k, v in cfg.items() if k != '_scope_'
                    }
        return build(dataloader, *args, **kwargs)

    build_dataloader.ediy_mm_untagged = True
    return build_dataloader


def install_dataloader_scope_fix() -> None:
    """Make ``Runner.build_dataloader`` drop the ``_scope_`` tag of the
    ``collate_fn`` and ``worker_init_fn`` configs (idempotent)."""
    build = Runner.build_dataloader
    if not getattr(build, 'ediy_mm_untagged', False):
        Runner.build_dataloader = staticmethod(_untagged(build))
