"""mmdet modules for the transfer benchmarks; import no mmpretrain here.

mmdet configs load them with::

    custom_imports = dict(
        imports=['ediy_mm.mmdet_plugins'], allow_failed_imports=False)
"""
from .res_layer_extra_norm import ExtraNormResLayer

__all__ = ['ExtraNormResLayer']
