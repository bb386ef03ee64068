"""A config's text is formatted by yapf once per distinct text, and is the
text yapf gives."""
import mmengine.config.config as mmengine_config
from mmengine.config import Config
from yapf.yapflib.yapf_api import FormatCode

import ediy_mm  # noqa: F401
from ediy_mm.utils.config_text import _cached
from helpers import CPU_EDIY

STYLE = dict(
    based_on_style='pep8',
    blank_line_before_nested_class_or_def=True,
    split_before_expression_after_opening_paren=True)


def test_each_distinct_text_is_formatted_once():
    calls = []

    def format_code(source, style_config=None, **kwargs):
        calls.append((source, style_config, kwargs))
        return source.upper(), True

    cached = _cached(format_code)
    assert cached('a = 1', style_config=STYLE) == ('A = 1', True)
    assert cached('a = 1', style_config=dict(STYLE)) == ('A = 1', True)
    assert len(calls) == 1 and calls[0][1] == STYLE
    assert cached('a = 2', style_config=STYLE) == ('A = 2', True)
    assert len(calls) == 2
    # other arguments are passed through, uncached
    cached('a = 1', style_config=STYLE, verify=True)
    cached('a = 1', style_config=STYLE, verify=True)
    assert len(calls) == 4 and calls[-1][2] == dict(verify=True)


def test_pretty_text_is_yapfs_and_follows_changes():
    assert mmengine_config.FormatCode.ediy_mm_cached
    cfg = Config.fromfile(CPU_EDIY)
    hits = mmengine_config.FormatCode.cache_info().hits
    text = cfg.pretty_text
    assert cfg.pretty_text == text
    assert mmengine_config.FormatCode.cache_info().hits == hits + 1
    cfg.model.base_momentum = 0.123
    changed = cfg.pretty_text
    assert 'base_momentum=0.123' in changed and changed != text
    assert Config.fromfile(CPU_EDIY).pretty_text == text
    raw = Config.fromfile(CPU_EDIY, format_python_code=False).pretty_text
    assert FormatCode(raw, style_config=STYLE)[0] == text
