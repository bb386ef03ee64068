"""mmpretrain's Vision Transformers returning both the cls token and the
patch grid, for algorithms whose global branch embeds the cls token and
whose local branch embeds every patch (E-DIY on ViT)."""
from typing import Tuple

import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

from .mocov3_vit import FixedPosMoCoV3ViT

__all__ = ['ClsAndMapViT', 'ClsAndMapMoCoV3ViT']


class _ClsAndMapMixin:
    """Each output index gives two outputs: the cls token ``[B, C]``, then
    the patch grid ``[B, C, H/p, W/p]`` (mmpretrain's ``'featmap'``).

    mmpretrain's ``out_type`` is one of ``'cls_token'`` and ``'featmap'``;
    this keeps both. The parameters and their names are mmpretrain's, so a
    checkpoint loads into ``VisionTransformer`` / ``MoCoV3ViT`` as it is.
    """

    def __init__(self, **kwargs) -> None:
        out_type = kwargs.pop('out_type', 'featmap')
        if out_type != 'featmap' or not kwargs.get('with_cls_token', True):
            raise ValueError(
                f'{type(self).__name__} returns the cls token and the patch '
                "grid: it needs out_type='featmap' and with_cls_token=True, "
                f'got out_type={out_type!r}, with_cls_token='
                f"{kwargs.get('with_cls_token', True)}")
        super().__init__(out_type='featmap', **kwargs)

    def _format_output(self, x: torch.Tensor,
                       hw: Tuple[int, int]) -> Tuple[torch.Tensor, ...]:
        return x[:, 0], super()._format_output(x, hw)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Run the transformer.

        Args:
            x (Tensor): Images ``[B, 3, H, W]``.

        Returns:
            tuple[Tensor]: For each output index, the cls token ``[B, C]``
            and the patch grid ``[B, C, H/p, W/p]`` (the last output is the
            last grid).
        """
        return tuple(out for pair in super().forward(x) for out in pair)


@MODELS.register_module()
class ClsAndMapViT(_ClsAndMapMixin, VisionTransformer):
    """mmpretrain's ``VisionTransformer`` returning ``(cls token, patch
    grid)`` per output index; takes its arguments (``out_type`` must stay
    ``'featmap'``)."""


@MODELS.register_module()
class ClsAndMapMoCoV3ViT(_ClsAndMapMixin, FixedPosMoCoV3ViT):
    """mmpretrain's ``MoCoV3ViT`` (fixed 2-D sin-cos position embedding,
    frozen from construction on as :class:`FixedPosMoCoV3ViT` does;
    optional stop-gradient patch projection) returning ``(cls token, patch
    grid)`` per output index; takes its arguments (``out_type`` must stay
    ``'featmap'``)."""
