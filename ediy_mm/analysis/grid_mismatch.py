"""Which regions E-DIY chooses when the teacher's grid is coarser than the
online grid, under each option of ``EDIY.region_grid`` (README,
"Backbones").

A ViT/16 has a 14x14 patch grid at 224 px, a ResNet teacher a 7x7 map. Three
ways to choose the regions of eq. 4 and eq. 6 are compared on real photos,
with the same teacher weights:

- ``same-stride``: the teacher with a dilated layer 4 (output stride 16, as
  DeepLab does), whose map is 14x14: the reference, a teacher of the online
  stride;
- ``interpolate``: the 7x7 map resized bilinearly to 14x14
  (``region_grid='interpolate'``);
- ``pool``: the 7x7 map as it is, the online grid pooled to 7x7
  (``region_grid='pool'``): each region is a block of 2x2 online cells.

Two views of a photo are overlapping crops with known boxes
(:func:`~ediy_mm.analysis.images.sample_crop_pair`), so the place of view 2
that a region of view 1 shows is known: the R-IEM match (eq. 6) of a region
should land there. For both equations the choices are also compared with
the reference's.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.models import ResNet

from ..models.losses import match_regions
from .backbones import FeatureExtractor, backbone_state, infer_resnet_depth
from .images import crop_view, load_rgb, sample_crop_pair
from .regions import corresponding_regions

__all__ = [
    'GRID_OPTIONS', 'METRICS', 'compare_grid_options', 'format_grid_table',
    'teacher_and_dilated'
]

#: The options compared, the reference first.
GRID_OPTIONS = ('same-stride', 'interpolate', 'pool')

#: The metrics of :func:`compare_grid_options`.
METRICS = ('riem_error_px', 'riem_within_cell', 'riem_agree', 'rdem_agree')


def teacher_and_dilated(
        checkpoint: Optional[str] = None,
        depth: int = 50,
        seed: int = 0) -> Tuple[FeatureExtractor, FeatureExtractor]:
    """A ResNet teacher (output stride 32) and the same weights with a
    dilated layer 4 (output stride 16).

    Args:
        checkpoint (str, optional): A checkpoint holding a ResNet (see
            :func:`~ediy_mm.analysis.backbone_state`); ``None``: PyTorch's
            random initialisation, seeded.
        depth (int): ResNet depth without a checkpoint. Defaults to 50.
        seed (int): Seed of the random initialisation. Defaults to 0.

    Returns:
        tuple[FeatureExtractor, FeatureExtractor]: Both in eval mode.
    """
    if checkpoint is None:
        torch.manual_seed(seed)
        state = ResNet(depth=depth, out_indices=(3, )).state_dict()
    else:
        state = backbone_state(checkpoint)
        depth = infer_resnet_depth(state)
    models = []
    for strides, dilations in (((1, 2, 2, 2), (1, 1, 1, 1)), ((1, 2, 2, 1),
                                                              (1, 1, 1, 2))):
        model = ResNet(
            depth=depth,
            out_indices=(3, ),
            strides=strides,
            dilations=dilations)
        model.load_state_dict(state)
        models.append(FeatureExtractor(model).eval())
    return models[0], models[1]


def _centres(grid: Sequence[int], size: int) -> torch.Tensor:
    """Pixel centres ``[h * w, 2]`` (x, y) of the cells of a view."""
    rows, cols = torch.meshgrid(
        torch.arange(grid[0], dtype=torch.float64),
        torch.arange(grid[1], dtype=torch.float64),
        indexing='ij')
    return torch.stack([(cols.flatten() + 0.5) * size / grid[1],
                        (rows.flatten() + 0.5) * size / grid[0]], 1)


def _true_points(box_1, box_2, grid: Sequence[int], size: int) -> torch.Tensor:
    """Where the centre of each view-1 cell lies in view 2, in view-2
    pixels ``[h * w, 2]``."""
    centres = _centres(grid, size)
    x = box_1.x0 + centres[:, 0] * (box_1.x1 - box_1.x0) / size
    y = box_1.y0 + centres[:, 1] * (box_1.y1 - box_1.y0) / size
    return torch.stack([(x - box_2.x0) * size / (box_2.x1 - box_2.x0),
                        (y - box_2.y0) * size / (box_2.y1 - box_2.y0)], 1)


def _parent(grid: Sequence[int], coarse: Sequence[int]) -> torch.Tensor:
    """The coarse cell ``[h * w]`` that holds each cell of ``grid``."""
    rows, cols = torch.meshgrid(
        torch.arange(grid[0]), torch.arange(grid[1]), indexing='ij')
    rows = rows.flatten() * coarse[0] // grid[0]
    cols = cols.flatten() * coarse[1] // grid[1]
    return rows * coarse[1] + cols


@torch.no_grad()
def compare_grid_options(
        teacher: FeatureExtractor,
        dilated: FeatureExtractor,
        paths: Sequence[str],
        size: int = 224,
        seed: int = 0) -> Dict[str, Dict[str, Tuple[float, float]]]:
    """Compare the regions each option of :data:`GRID_OPTIONS` chooses.

    For each photo ``i``, two crops (``sample_crop_pair`` with seed
    ``seed + i``) are resized to ``size``. The online grid is the dilated
    teacher's (``size / 16``), the teacher's is ``size / 32``.

    Args:
        teacher (FeatureExtractor): The teacher (its map is the coarse
            grid).
        dilated (FeatureExtractor): The same weights at the online stride.
        paths (Sequence[str]): Photos.
        size (int): View side in pixels. Defaults to 224.
        seed (int): Seed of the crops. Defaults to 0.

    Returns:
        dict[str, dict[str, tuple[float, float]]]: Per option and metric
        of :data:`METRICS`, the mean over the photos and its standard error
        (std / sqrt(photos)):

        - ``riem_error_px``: the mean distance, in view-2 pixels, from the
          centre of the region of view 2 that eq. 6 matches to a region of
          view 1 to where that region's centre really is (regions whose
          centre view 2 shows);
        - ``riem_within_cell``: the fraction of those matches within one
          online cell (``size / 16`` px) of the true place, in both x and y;
        - ``riem_agree`` / ``rdem_agree``: the fraction of online regions
          whose eq. 6 / eq. 4 match is the reference's (for ``pool``: lies
          in the 2x2 block the pooled match chooses; chance is 4 in
          ``(size / 16)**2``).
    """
    per_image: Dict[str, Dict[str, List[float]]] = {
        o: {
            k: []
            for k in METRICS
        }
        for o in GRID_OPTIONS
    }
    for i, path in enumerate(paths):
        photo = load_rgb(path)
        boxes = sample_crop_pair(*photo.size, seed=seed + i)
        views = torch.stack([crop_view(photo, b, size) for b in boxes])
        coarse, fine = teacher(views), dilated(views)
        online, pooled = fine.shape[-2:], coarse.shape[-2:]
        maps = {
            'same-stride':
            fine,
            'interpolate':
            F.interpolate(
                coarse, size=online, mode='bilinear', align_corners=False),
            'pool':
            coarse
        }
        parent = _parent(online, pooled)
        true = _true_points(*boxes, online, size)
        shown = corresponding_regions(*boxes, online, online) >= 0
        reference = {}
        for option in GRID_OPTIONS:
            m1, m2 = maps[option][:1], maps[option][1:]
            riem = match_regions(m1, m2, 'similar')[0]
            rdem = match_regions(m1, m1, 'different')[0]
            if option == 'pool':  # back on the online grid, as 2x2 blocks
                riem, rdem = riem[parent], rdem[parent]
                points = _centres(pooled, size)[riem]
            else:
                points = _centres(online, size)[riem]
            error = (points - true).abs()[shown]
            if option == 'same-stride':
                reference = dict(riem=riem, rdem=rdem)
            ref_riem, ref_rdem = reference['riem'], reference['rdem']
            if option == 'pool':
                ref_riem, ref_rdem = parent[ref_riem], parent[ref_rdem]
            out = per_image[option]
            out['riem_error_px'].append(
                float(error.pow(2).sum(1).sqrt().mean()))
            out['riem_within_cell'].append(
                float((error <= size / online[1]).all(1).double().mean()))
            out['riem_agree'].append(float((ref_riem == riem).double().mean()))
            out['rdem_agree'].append(float((ref_rdem == rdem).double().mean()))
    return {
        option: {
            key: (float(np.mean(v)), float(np.std(v) / np.sqrt(len(v))))
            for key, v in values.items()
        }
        for option, values in per_image.items()
    }


def format_grid_table(
        results: Dict[str, Dict[str, Tuple[float, float]]]) -> str:
    """A Markdown table of :func:`compare_grid_options`'s output (mean ±
    standard error)."""
    lines = [
        '| option | ' + ' | '.join(METRICS) + ' |',
        '|---|' + '---:|' * len(METRICS),
    ]
    for option, values in results.items():
        cells = ' | '.join(f'{values[k][0]:.3f} ± {values[k][1]:.3f}'
                           for k in METRICS)
        lines.append(f'| {option} | {cells} |')
    return '\n'.join(lines)
