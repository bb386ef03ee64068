"""What the region methods and the evaluation tools read from any
mmpretrain backbone: the input sizes its patch embedding accepts, its grid
of cells and one global feature per image.

ResNets, ConvNeXts (``gap_before_final_norm=False``) and Swins return maps
``[B, C, h, w]``; a Vision Transformer returns its patch grid with
``out_type='featmap'`` and its cls token ``[B, C]`` with
``out_type='cls_token'`` (mmpretrain's default).
"""
from typing import Optional, Tuple

from torch import Tensor, nn

__all__ = ['check_patch_fit', 'global_feature', 'patch_size', 'return_grid']


def patch_size(backbone: nn.Module) -> Optional[Tuple[int, int]]:
    """The ``(height, width)`` in pixels of a backbone's input patches.

    mmpretrain's transformers (``VisionTransformer`` and its subclasses,
    ``SwinTransformer``) embed the image with mmcv's ``PatchEmbed``, a
    convolution (``patch_embed.projection``) striding by the patch.

    Args:
        backbone (nn.Module): An mmpretrain backbone.

    Returns:
        tuple[int, int], optional: The patch, or None for a backbone
        without a patch embedding (ResNet, ConvNeXt).
    """
    embed = getattr(backbone, 'patch_embed', None)
    projection = getattr(embed, 'projection', None)
    if not isinstance(projection, nn.Conv2d):
        return None
    return tuple(projection.stride)


def check_patch_fit(backbone: nn.Module, images: Tensor, what: str) -> None:
    """Raise a clear error unless ``images`` are a whole number of the
    backbone's patches.

    mmcv's ``PatchEmbed`` pads other sizes on the bottom and the right, so
    the grid would end in cells that are partly zero padding. Backbones
    without a patch embedding accept any size.

    Args:
        backbone (nn.Module): An mmpretrain backbone.
        images (Tensor): ``[..., H, W]``.
        what (str): What the images are, for the message (e.g. ``'the
            instance crops (UniVIPViews.instance_size)'``).

    Raises:
        ValueError: Naming both sizes and the nearest sides that fit.
    """
    patch = patch_size(backbone)
    if patch is None:
        return
    height, width = images.shape[-2:]
    if height % patch[0] or width % patch[1]:
        fits = [((side + p - 1) // p) * p
                for side, p in ((width, patch[1]), (height, patch[0]))]
        raise ValueError(
            f'{what} are {width}x{height} px, not a whole number of the '
            f'{patch[1]}x{patch[0]} px patches of the '
            f'{type(backbone).__name__} (its patch embedding would pad them '
            f'with zeros): use sides that are multiples of the patch, e.g. '
            f'{fits[0]}x{fits[1]} px')


def global_feature(output: Tensor) -> Tensor:
    """One feature per image from a backbone output.

    Args:
        output (Tensor): A map ``[B, C, h, w]`` (averaged over its cells) or
            a global feature ``[B, C]`` (a ViT's cls token or pooled patch
            tokens, a pooled ConvNeXt), taken as it is.

    Returns:
        Tensor: ``[B, C]``.

    Raises:
        ValueError: For any other shape (a ViT with ``out_type='raw'``).
    """
    if output.dim() == 4:
        return output.mean((2, 3))
    if output.dim() == 2:
        return output
    raise ValueError(
        f'a backbone output of shape {tuple(output.shape)} is neither a map '
        '[B, C, h, w] nor a global feature [B, C]; for a Vision Transformer '
        "use out_type='featmap' or 'cls_token'")


def return_grid(backbone: nn.Module) -> nn.Module:
    """Make an mmpretrain backbone return its grid of cells, in place.

    A Vision Transformer then returns its patch grid (``out_type=
    'featmap'``: the patch tokens after the final norm, without the cls
    token) and a ConvNeXt its last map before pooling
    (``gap_before_final_norm=False``: the same final norm on every cell).
    The weights are not touched; other backbones are left as they are.

    Args:
        backbone (nn.Module): An mmpretrain backbone.

    Returns:
        nn.Module: ``backbone``.
    """
    if getattr(backbone, 'out_type', 'featmap') != 'featmap':
        backbone.out_type = 'featmap'
    if getattr(backbone, 'gap_before_final_norm', False):
        backbone.gap_before_final_norm = False
    return backbone
