"""A config's text is formatted once, not at every log, dump and save.

mmengine's ``Config.pretty_text`` formats the whole config with yapf each
time it is read: the Runner reads it to log the config, to dump it, for
the visualiser and in every checkpoint's ``meta``, about a second each on
a CPU. In a short run (the comparison tool's, a test's) that is a third
of the time. The formatted text is a pure function of the unformatted
text and the style, so :func:`install_config_text_cache` keeps the last
few results; every config still gets exactly the text yapf gives it.
"""
import functools
from typing import Callable, Optional, Tuple

import mmengine.config.config as mmengine_config

__all__ = ['install_config_text_cache']

#: Distinct config texts kept (a run reads one; the comparison tool's
#: runs each read theirs).
CACHE_SIZE = 16


def _cached(format_code: Callable) -> Callable:
    """Wrap yapf's ``FormatCode`` with a cache keyed by the source and the
    style (other arguments are passed through uncached)."""

    @functools.lru_cache(maxsize=CACHE_SIZE)
    def formatted(source: str, style: Tuple) -> Tuple[str, bool]:
        return format_code(source, style_config=dict(style))

    @functools.wraps(format_code)
    def format_once(source: str,
                    style_config: Optional[dict] = None,
                    **kwargs) -> Tuple[str, bool]:
        if kwargs or not isinstance(style_config, dict):
            return format_code(source, style_config=style_config, **kwargs)
        return formatted(source, tuple(sorted(style_config.items())))

    format_once.ediy_mm_cached = True
    format_once.cache_info = formatted.cache_info
    return format_once


def install_config_text_cache() -> None:
    """Make ``Config.pretty_text`` format each distinct config text once
    per process (idempotent)."""
    current = mmengine_config.FormatCode
    if not getattr(current, 'ediy_mm_cached', False):
        mmengine_config.FormatCode = _cached(current)
