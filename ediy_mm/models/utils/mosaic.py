"""The mosaic view of MosRep (Wang et al., ICLR 2023, "Mosaic
Representation Learning for Self-supervised Visual Pre-training",
https://openreview.net/forum?id=JAezPMehaUu), batched.

A mosaic of sample ``b`` is a ``G x G`` grid of small crops: cell ``k``
(row-major, ``k = 0 .. G*G - 1``) holds local crop ``k`` of image
``(b - k) mod B`` of the batch, so one mosaic shows ``G*G`` different
images (the authors' ``moco/builder.py``, ``G = 2``). Jitter then shifts
the whole mosaic onto a zero canvas; each cell keeps its box (clipped to
the canvas) and the weight ``sqrt(visible fraction of its area)``.

The cells are pooled by RoIAlign from the backbone's last map, whatever the
backbone: a ResNet's or a ConvNeXt's last stage (stride 32), a ViT's patch
grid (``out_type='featmap'``, stride 16 for ViT/16). The map's stride is a
config key (:class:`MosaicSampler` ``spatial_scale``), checked against the
map the backbone returns.

Boxes are in continuous pixel coordinates, pixel ``i`` spanning
``[i, i + 1]``: the convention of ``torchvision.ops.roi_align(...,
aligned=True)``, so a cell of ``w`` pixels starting at ``x`` is
``[x, x + w]``. (The released code writes ``[x, x + w - 1]``, the
inclusive pixel indices, which with ``aligned=True`` samples a box one
pixel smaller; the weights are the same either way.)
"""
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from .backbone_grid import check_patch_fit
from .process_random import draw_for_this_process

__all__ = [
    'Mosaic', 'MosaicSampler', 'assemble_mosaic', 'mosaic_sources',
    'shift_images', 'split_views'
]


class Mosaic(NamedTuple):
    """A batch of mosaic views and what each cell came from.

    Attributes:
        images (Tensor): The mosaics, ``[B, C, G*h, G*w]``.
        boxes (Tensor): Box of every cell on its mosaic, ``[B, K, 4]``
            float32 ``(x1, y1, x2, y2)``, continuous pixel coordinates
            (clipped to the canvas), ``K = G*G``.
        sources (Tensor): Index of the image each cell comes from,
            ``[B, K]`` int64; with ``source_offset`` added (the global index
            among the keys gathered over the processes).
        weights (Tensor): ``sqrt`` of the visible fraction of every cell's
            area, ``[B, K]`` float32 (1 without jitter).
    """
    images: Tensor
    boxes: Tensor
    sources: Tensor
    weights: Tensor


def mosaic_sources(batch_size: int,
                   num_cells: int,
                   source_offset: int = 0,
                   device: Optional[torch.device] = None) -> Tensor:
    """Index of the image that fills each cell: ``(b - k) mod B + offset``.

    Args:
        batch_size (int): ``B``.
        num_cells (int): ``K``, cells per mosaic.
        source_offset (int): Added to every index (``rank * B`` under DDP).
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: ``[B, K]`` int64.
    """
    b = torch.arange(batch_size, device=device)[:, None]
    k = torch.arange(num_cells, device=device)[None, :]
    return (b - k).remainder(batch_size) + source_offset


def shift_images(images: Tensor, shifts: Tensor) -> Tensor:
    """Move every image by an integer offset onto a zero canvas.

    ``out[b, :, y + dy_b, x + dx_b] = images[b, :, y, x]`` where it lands
    inside the canvas; the rest of ``out`` is 0. One gather for the whole
    batch.

    Args:
        images (Tensor): ``[B, C, H, W]``.
        shifts (Tensor): ``[B, 2]`` integer ``(dx, dy)``, in pixels.

    Returns:
        Tensor: ``[B, C, H, W]``, contiguous.
    """
    b, _, h, w = images.shape
    rows = torch.arange(h, device=images.device) - shifts[:, 1:2]
    cols = torch.arange(w, device=images.device) - shifts[:, 0:1]
    inside = (((rows >= 0) & (rows < h))[:, :, None]
              & ((cols >= 0) & (cols < w))[:, None, :])
    batch = torch.arange(b, device=images.device)[:, None, None]
    # advanced indices around a slice: the result is [B, H, W, C]
    moved = images[batch, :,
                   rows.clamp(0, h - 1)[:, :, None],
                   cols.clamp(0, w - 1)[:, None, :]]
    moved = moved * inside[..., None].to(moved.dtype)
    return moved.permute(0, 3, 1, 2).contiguous()


def _check_crops(crops: Tensor) -> int:
    """Validate ``[B, K, C, h, w]`` crops; return the grid side ``G``."""
    if crops.dim() != 5:
        raise ValueError('mosaic crops must be [B, K, C, h, w], got shape '
                         f'{tuple(crops.shape)}')
    grid = math.isqrt(crops.size(1))
    if crops.size(0) == 0 or grid * grid != crops.size(1) or grid == 0:
        raise ValueError(
            'a mosaic needs a non-empty batch and a square number of local '
            f'crops per image (4 for a 2x2 grid), got {crops.size(0)} '
            f'images x {crops.size(1)} crops')
    return grid


def _check_shifts(shifts: Tensor, batch_size: int, cell: Tuple[int,
                                                               int]) -> None:
    """Validate ``[B, 2]`` integer shifts that leave every cell visible."""
    if shifts.shape != (batch_size, 2) or shifts.is_floating_point():
        raise ValueError(f'shifts must be a [{batch_size}, 2] integer '
                         f'(dx, dy) tensor, got {shifts.dtype} '
                         f'{tuple(shifts.shape)}')
    limit = torch.tensor(cell, device=shifts.device)
    if bool((shifts.abs() >= limit).any()):
        raise ValueError(
            f'a shift of at least a cell ({cell[0]}x{cell[1]} px) hides '
            f'whole cells; got shifts up to {shifts.abs().max().item()} px')


def assemble_mosaic(crops: Tensor,
                    shifts: Optional[Tensor] = None,
                    source_offset: int = 0) -> Mosaic:
    """Compose the mosaic views of a batch and jitter them (MosRep).

    Cell ``k = G*r + c`` (row ``r``, column ``c``) of mosaic ``b`` is
    ``crops[(b - k) mod B, k]``, at ``[c*w, r*h]`` before the shift. With
    ``shifts``, mosaic ``b`` is then moved by ``shifts[b] = (dx, dy)``
    pixels onto a zero canvas of the same size (:func:`shift_images`); each
    box moves with its cell and is clipped to the canvas, and its weight
    is ``sqrt(visible area / (h*w))``. No loop over samples.

    The released code draws one offset ``o`` per batch and writes
    ``canvas[c] = mosaic[c + o]``, i.e. ``shifts = -o`` here (the Beta
    distribution it draws from is symmetric).

    Args:
        crops (Tensor): Local crops ``[B, K, C, h, w]``, ``K = G*G``.
        shifts (Tensor, optional): ``[B, 2]`` integer ``(dx, dy)`` with
            ``|dx| < w`` and ``|dy| < h`` (every cell stays partly
            visible). Defaults to None: no jitter.
        source_offset (int): Added to the source indices (``rank * B``
            under DDP, so that they index the gathered keys).

    Returns:
        Mosaic: images ``[B, C, G*h, G*w]``, boxes ``[B, K, 4]``, sources
        and weights ``[B, K]``.
    """
    grid = _check_crops(crops)
    b, k, c, h, w = crops.shape
    device = crops.device
    local = mosaic_sources(b, k, device=device)
    cells = crops[local, torch.arange(k, device=device)]  # [B, K, C, h, w]
    images = cells.view(b, grid, grid, c, h, w).permute(0, 3, 1, 4, 2, 5)
    images = images.reshape(b, c, grid * h, grid * w)
    if shifts is None:
        shift = torch.zeros(b, 2, dtype=torch.long, device=device)
    else:
        _check_shifts(shifts, b, (w, h))
        shift = shifts.to(device=device, dtype=torch.long)
        images = shift_images(images, shift)
    cell = torch.arange(k, device=device)
    x1 = (cell % grid * w)[None] + shift[:, 0:1]
    y1 = (cell // grid * h)[None] + shift[:, 1:2]
    x1, x2 = x1.clamp(0, grid * w), (x1 + w).clamp(0, grid * w)
    y1, y2 = y1.clamp(0, grid * h), (y1 + h).clamp(0, grid * h)
    boxes = torch.stack([x1, y1, x2, y2], dim=-1).float()
    visible = ((x2 - x1) * (y2 - y1)).float() / (h * w)
    return Mosaic(images, boxes, local + source_offset, visible.sqrt())


def split_views(inputs: Sequence[Tensor],
                num_global: int = 2) -> Tuple[List[Tensor], Tensor]:
    """Split MultiView inputs into global views and mosaic crops.

    With ``dict(type='MultiView', num_views=[2, 4], transforms=[global,
    local])`` the batch holds the two global views, then the four local
    crops.

    Args:
        inputs (Sequence[Tensor]): ``num_global`` views ``[B, C, H, W]``
            then ``K`` crops ``[B, C, h, w]`` (``K`` a square, >= 1).
        num_global (int): Number of global views. Defaults to 2.

    Returns:
        tuple: The global views (list) and the crops ``[B, K, C, h, w]``.

    Raises:
        ValueError: Naming what is missing or mismatched.
    """
    if not isinstance(inputs, (list, tuple)):
        raise ValueError('mosaic methods need a list of views, got a '
                         f'single {type(inputs).__name__}')
    views, crops = list(inputs[:num_global]), list(inputs[num_global:])
    if len(views) < num_global or not crops:
        raise ValueError(
            f'mosaic methods need {num_global} global views followed by the '
            f'local crops (4 for a 2x2 mosaic), got {len(inputs)} views. '
            "Use dict(type='MultiView', num_views=[2, 4], "
            'transforms=[global_pipeline, local_pipeline]).')
    for name, group in (('global views', views), ('local crops', crops)):
        shapes = {tuple(x.shape) for x in group}
        if len(shapes) != 1:
            raise ValueError(f'the {name} must share one shape, got '
                             f'{sorted(shapes)}')
    if views[0].size(0) != crops[0].size(0):
        raise ValueError(f'{views[0].size(0)} global views but '
                         f'{crops[0].size(0)} local crops in the batch')
    stacked = torch.stack(crops, dim=1)
    _check_crops(stacked)
    return views, stacked


class MosaicSampler:
    """Draws the jitter and builds a batch's mosaics; pools their cells.

    The released recipe (``pretrain_mosrep.sh``): with probability
    ``jitter_prob`` (1.0) the whole batch of mosaics is shifted by one
    offset per axis, ``trunc((Beta(β, β)·2 − 1)·jitter_pixels)`` with
    ``β = 0.5`` and 48 px (for 112 px crops); cells are pooled by RoIAlign
    7x7 over the last backbone map (stride 32, ``aligned=True``). The
    random draws use torch's global generator, so ``RandomStateHook``
    restores them on resume.

    Other backbones pool from their own grid: ``spatial_scale`` is one over
    the stride of the map the cells are pooled from (1/16 for a ViT/16
    patch grid, 1/32 for a ConvNeXt's last stage), and the mosaics must be
    a whole number of patches for a backbone with a patch embedding
    (:meth:`cell_features` checks both on every batch).

    Args:
        jitter_prob (float): Probability of shifting a batch. Defaults to
            1.0.
        jitter_pixels (int): Largest shift, in pixels (must be smaller
            than a crop). Defaults to 48.
        jitter_beta (float): β of the Beta distribution. Defaults to 0.5.
        roi_size (int): RoIAlign output side. Defaults to 7.
        spatial_scale (float): Backbone map size / image size: one over
            the map's stride. Defaults to 1/32 (ResNet layer 4).
    """

    def __init__(self,
                 jitter_prob: float = 1.0,
                 jitter_pixels: int = 48,
                 jitter_beta: float = 0.5,
                 roi_size: int = 7,
                 spatial_scale: float = 1 / 32) -> None:
        if not 0. <= jitter_prob <= 1.:
            raise ValueError(
                f'jitter_prob must be in [0, 1], got {jitter_prob}')
        if int(jitter_pixels) != jitter_pixels or jitter_pixels < 0:
            raise ValueError('jitter_pixels must be an integer >= 0, got '
                             f'{jitter_pixels}')
        if jitter_beta <= 0:
            raise ValueError(f'jitter_beta must be > 0, got {jitter_beta}')
        if int(roi_size) != roi_size or roi_size < 1:
            raise ValueError(
                f'roi_size must be an integer >= 1, got {roi_size}')
        if spatial_scale <= 0:
            raise ValueError(f'spatial_scale must be > 0, got {spatial_scale}')
        self.jitter_prob = jitter_prob
        self.jitter_pixels = int(jitter_pixels)
        self.jitter_beta = jitter_beta
        self.roi_size = int(roi_size)
        self.spatial_scale = spatial_scale

    def draw_shifts(self, batch_size: int) -> Optional[Tensor]:
        """One jitter for this process's batch, as released (one draw per
        GPU, :func:`draw_for_this_process`): ``None`` (no shift) with
        probability ``1 - jitter_prob``, else ``[B, 2]`` copies of one
        ``(dx, dy)``."""
        if self.jitter_pixels == 0:
            return None
        offset = draw_for_this_process(self._draw_offset)
        return None if offset is None else offset.expand(batch_size, 2)

    def _draw_offset(self) -> Optional[Tensor]:
        """``None`` with probability ``1 - jitter_prob``, else one
        ``(dx, dy)``, each ``trunc((Beta(β, β)·2 − 1)·jitter_pixels)``."""
        if not bool(torch.rand(()) < self.jitter_prob):
            return None
        beta = torch.distributions.Beta(
            torch.tensor(self.jitter_beta), torch.tensor(self.jitter_beta))
        offset = ((beta.sample((2, )) * 2 - 1) * self.jitter_pixels).trunc()
        return offset.long()

    def __call__(self, crops: Tensor, source_offset: int = 0) -> Mosaic:
        """Jitter and assemble the mosaics of a batch.

        Args:
            crops (Tensor): ``[B, K, C, h, w]`` local crops.
            source_offset (int): See :func:`assemble_mosaic`.

        Returns:
            Mosaic: The batch's mosaics.
        """
        _check_crops(crops)
        if self.jitter_prob > 0 and self.jitter_pixels >= min(
                crops.shape[-2:]):
            raise ValueError(
                f'jitter_pixels={self.jitter_pixels} must be smaller than '
                f'the local crops ({crops.shape[-1]}x{crops.shape[-2]} px)')
        return assemble_mosaic(crops, self.draw_shifts(crops.size(0)),
                               source_offset)

    def check_grid(self, maps: Tensor, images: Tensor) -> None:
        """Raise a clear error unless ``spatial_scale`` is the stride of
        the backbone's map.

        The map of ``H x W`` px images at stride ``s`` has ``H / s`` rows
        (rounded either way: a ResNet pads, a ConvNeXt drops the rest) and
        ``W / s`` columns; a wrong stride (1/32 on a ViT/16's patch grid)
        misses that by at least one cell.

        Args:
            maps (Tensor): ``[B, C, h, w]``.
            images (Tensor): The images they come from, ``[B, 3, H, W]``.

        Raises:
            ValueError: Naming the sizes, the stride they imply and the key;
                or when the grid has fewer than 2 cells per side, where no
                stride can be told.
        """
        stride = 1 / self.spatial_scale
        (height, width), (rows, cols) = images.shape[-2:], maps.shape[-2:]
        if min(rows, cols) < 2:
            # One cell per side fits every stride from the mosaic's side up:
            # neither the stride nor the cells' positions can be told.
            raise ValueError(
                f'the backbone maps the {width}x{height} px mosaics to a '
                f'{cols}x{rows} grid: a mosaic needs at least 2 cells of the '
                'map per side for its cells to be pooled apart (make the '
                'mosaic at least twice the stride of the map)')
        if abs(height / stride - rows) >= 1 or abs(width / stride - cols) >= 1:
            raise ValueError(
                f'the backbone maps the {width}x{height} px mosaics to a '
                f'{cols}x{rows} grid (a stride of {width / cols:g} px), but '
                f'model.mosaic.spatial_scale is 1/{stride:g}: set it to one '
                'over the stride of the map the cells are pooled from (1/16 '
                'for a ViT/16 patch grid, 1/32 for the last stage of a '
                'ResNet or a ConvNeXt)')

    def cell_features(self, backbone: nn.Module, mosaic: Mosaic) -> Tensor:
        """RoIAlign every cell of the mosaics from the backbone's last map.

        Args:
            backbone (nn.Module): An mmpretrain backbone (its last output is
                the map).
            mosaic (Mosaic): The batch's mosaics.

        Returns:
            Tensor: ``[B*K, C, roi_size, roi_size]``, ordered as
            ``mosaic.sources.flatten()``.

        Raises:
            ValueError: Before the backbone runs when the mosaics are not a
                whole number of its patches; after, when ``spatial_scale``
                is not its map's stride.
        """
        check_patch_fit(backbone, mosaic.images,
                        'the mosaics (grid side x local crop side)')
        return self.roi_features(backbone(mosaic.images)[-1], mosaic)

    def roi_features(self, maps: Tensor, mosaic: Mosaic) -> Tensor:
        """RoIAlign every cell of the mosaics' backbone maps.

        Args:
            maps (Tensor): Backbone maps of ``mosaic.images``,
                ``[B, C, H', W']``, of stride ``1 / spatial_scale``
                (checked by :meth:`check_grid`).
            mosaic (Mosaic): Their mosaics.

        Returns:
            Tensor: ``[B*K, C, roi_size, roi_size]``, ordered as
            ``mosaic.sources.flatten()``.
        """
        if maps.dim() != 4:
            raise ValueError(
                'MosRep pools the mosaic cells from a map [B, C, h, w]; the '
                f'backbone returned {tuple(maps.shape)} (a ViT needs '
                "out_type='featmap', a ConvNeXt gap_before_final_norm=False)")
        self.check_grid(maps, mosaic.images)
        boxes = mosaic.boxes.to(maps.dtype)
        return roi_align(
            maps,
            list(boxes.unbind(0)),
            output_size=self.roi_size,
            spatial_scale=self.spatial_scale,
            sampling_ratio=-1,
            aligned=True)
