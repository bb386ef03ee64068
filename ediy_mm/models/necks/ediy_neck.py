from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

__all__ = ['EDIYNeck', 'GLOBAL_INPUTS', 'project_regions']

#: Values of ``EDIYNeck(global_input=...)``: what the global projector
#: embeds.
GLOBAL_INPUTS = ('map', 'cls_token')


@MODELS.register_module()
class EDIYNeck(BaseModule):
    """The global and the local projector of E-DIY (Sec. 3.2, Fig. 2).

    Both projectors have the architecture of BYOL's projector (Sec. 4.2),
    mmpretrain's ``NonLinearNeck``: ``fc(in, hid) - BN - ReLU - fc(hid,
    out)``. The global projector embeds the average-pooled feature map; the
    local projector embeds every cell (region) of the map on its own, which
    is a stack of 1x1 convolutions: the map is viewed as ``B*H*W`` vectors,
    so its batch norm pools statistics over batch and positions exactly as a
    ``BatchNorm2d`` would.

    A projector that no loss term uses is not built (``with_global`` /
    ``with_local``; :class:`EDIY` sets them from its head), so that every
    parameter receives a gradient and DDP needs no
    ``find_unused_parameters``.

    On a Vision Transformer the map is the patch grid, and the global
    projector embeds either the average-pooled grid (``global_input='map'``,
    as for a CNN) or the cls token (``global_input='cls_token'``, as MoCo v3
    and DINO do): the backbone then returns the cls token ``[B, C]`` just
    before the grid, as :class:`~ediy_mm.models.ClsAndMapViT` does.

    Args:
        in_channels (int): Channels of the backbone's last map.
            Defaults to 2048.
        hid_channels (int): Hidden width. Defaults to 4096.
        out_channels (int): Embedding width. Defaults to 256.
        with_bias (bool): Bias in the hidden linear layer (BYOL: True).
        with_last_bn (bool): Batch norm after the last layer (BYOL: False).
        norm_cfg (dict): Norm layer config. Defaults to
            ``dict(type='SyncBN')``.
        with_global (bool): Build the global projector. Defaults to True.
        with_local (bool): Build the local projector. Defaults to True.
        global_input (str): What the global projector embeds: ``'map'``
            (the average-pooled last map) or ``'cls_token'`` (the
            backbone's second-to-last output, ``[B, C]``). Defaults to
            ``'map'``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 2048,
                 hid_channels: int = 4096,
                 out_channels: int = 256,
                 with_bias: bool = True,
                 with_last_bn: bool = False,
                 norm_cfg: dict = dict(type='SyncBN'),
                 with_global: bool = True,
                 with_local: bool = True,
                 global_input: str = 'map',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not (with_global or with_local):
            raise ValueError('EDIYNeck needs with_global or with_local')
        if global_input not in GLOBAL_INPUTS:
            raise ValueError(f'EDIYNeck global_input must be one of '
                             f'{GLOBAL_INPUTS}, got {global_input!r}')
        self.global_input = global_input
        projector = dict(
            type='NonLinearNeck',
            in_channels=in_channels,
            hid_channels=hid_channels,
            out_channels=out_channels,
            num_layers=2,
            with_bias=with_bias,
            with_last_bn=with_last_bn,
            norm_cfg=norm_cfg)
        self.global_projector = MODELS.build(
            dict(**projector, with_avg_pool=global_input
                 == 'map')) if with_global else None
        self.local_projector = MODELS.build(
            dict(**projector, with_avg_pool=False)) if with_local else None

    def forward(
        self,
        inputs: Tuple[torch.Tensor, ...],
        with_global: bool = True,
        with_local: bool = True,
        local_grid: Optional[Tuple[int, int]] = None
    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Project the last backbone map (and the cls token).

        Args:
            inputs (tuple[Tensor]): Backbone outputs; the last one,
                ``[B, C, H, W]``, is projected (and, with
                ``global_input='cls_token'``, the one before it, ``[B, C]``).
            with_global (bool): Whether to run the global projector.
            with_local (bool): Whether to run the local projector.
            local_grid (tuple[int], optional): ``(h, w)``: the local
                projector embeds the map average-pooled to this grid (each
                region is then a block of cells: ``H`` and ``W`` must be
                multiples of ``h`` and ``w``); ``None``: every cell.

        Returns:
            tuple: The global embedding ``[B, D]`` and the local map
            ``[B, D, H, W]`` (``[B, D, h, w]`` with ``local_grid``), each
            ``None`` when not asked for.
        """
        x = inputs[-1]
        global_embedding = _built(self.global_projector, 'global')(
            (self._global_input(inputs), ))[0] if with_global else None
        local_map = None
        if with_local:
            if local_grid is not None:
                x = F.adaptive_avg_pool2d(x, _block_grid(x, local_grid))
            local_map = project_regions(
                _built(self.local_projector, 'local'), x)
        return global_embedding, local_map

    def _global_input(self, inputs: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The last map, or the cls token before it (checked)."""
        if self.global_input == 'map':
            return inputs[-1]
        if len(inputs) < 2 or inputs[-2].dim() != 2:
            shapes = [tuple(x.shape) for x in inputs]
            raise ValueError(
                "EDIYNeck(global_input='cls_token') needs the backbone to "
                'return the cls token [B, C] just before the last map, as '
                f'ClsAndMapViT does; got outputs of shapes {shapes}. Use '
                "type='ClsAndMapViT' (or 'ClsAndMapMoCoV3ViT'), or "
                "global_input='map'.")
        return inputs[-2]


def _block_grid(x: torch.Tensor, grid: Sequence[int]) -> Tuple[int, int]:
    """``grid`` as a tuple, checked to split the map ``x`` ``[B, C, H, W]``
    into equal blocks of whole cells."""
    grid, size = tuple(grid), tuple(x.shape[-2:])
    if any(s % g for s, g in zip(size, grid)):
        raise ValueError(
            f'EDIYNeck local_grid {grid} does not split the {size} map into '
            'blocks of whole cells: each side of the map must be a multiple '
            "of the grid's.")
    return grid


def _built(projector: Optional[torch.nn.Module], name: str) -> torch.nn.Module:
    """``projector``, or a clear error when it was not built."""
    if projector is None:
        raise RuntimeError(
            f'the {name} projector was not built (with_{name}=False)')
    return projector


def project_regions(projector: torch.nn.Module,
                    x: torch.Tensor) -> torch.Tensor:
    """Apply a vector projector (``NonLinearNeck``) to every map cell.

    Args:
        projector (nn.Module): Maps ``([N, C],)`` to ``([N, D],)``.
        x (Tensor): Map ``[B, C, H, W]``.

    Returns:
        Tensor: ``[B, D, H, W]`` (channels-last in memory).
    """
    b, c, h, w = x.shape
    cells = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
    out = projector((cells, ))[0]
    return out.view(b, h, w, -1).permute(0, 3, 1, 2)
