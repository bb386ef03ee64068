"""Draw what UniVIP trains on: for each image, the two scene crops, their
overlap and the ``K`` instances in it (:class:`~ediy_mm.datasets.
UniVIPViews`'s geometry), as the proposals and the fallback choose them."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from matplotlib.patches import Rectangle
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from ..datasets.univip_boxes import BoxRules
from .images import CropBox, load_rgb
from .plotting import draw_box, new_figure, save_figure, show_image

__all__ = ['image_proposals', 'univip_views_figure']

#: Colours of scene 1, scene 2, the overlap and the instances.
COLOURS = ('tab:blue', 'tab:orange', 'tab:green', 'tab:red')


def image_proposals(path: str,
                    rules: BoxRules,
                    max_side: Optional[int] = 512) -> np.ndarray:
    """Selective search proposals of one image, filtered by ``rules``.

    Args:
        path (str): The image.
        rules (BoxRules): The filter.
        max_side (int, optional): See
            :func:`ediy_mm.datasets.univip_proposals.selective_search`.

    Returns:
        np.ndarray: ``[N, 4]`` boxes.
    """
    from ..datasets.univip_proposals import selective_search
    bgr = np.ascontiguousarray(np.asarray(load_rgb(path))[..., ::-1])
    return rules.filter(selective_search(bgr, max_side=max_side))


def _crop(image: Image.Image, box: np.ndarray, size: int) -> np.ndarray:
    """``box`` of ``image`` resized to ``size x size``, as an array."""
    return np.asarray(image.resize((size, size), Image.BICUBIC, box=box))


def _draw_instances(ax, boxes: np.ndarray, origin: np.ndarray,
                    scale: np.ndarray) -> None:
    """Numbered instance boxes, mapped by ``(box - origin) * scale``."""
    for k, box in enumerate(boxes):
        x1, y1 = (box[:2] - origin) * scale
        w, h = (box[2:] - box[:2]) * scale
        ax.add_patch(
            Rectangle((x1, y1),
                      w,
                      h,
                      fill=False,
                      edgecolor=COLOURS[3],
                      linewidth=1.5))
        ax.text(
            x1 + 2,
            y1 + 2,
            str(k + 1),
            color='white',
            fontsize=7,
            va='top',
            bbox=dict(facecolor=COLOURS[3], pad=0.5, linewidth=0))


def univip_views_figure(paths: Sequence[str],
                        out: str,
                        proposals: Optional[Dict[str, np.ndarray]] = None,
                        num_instances: int = 4,
                        rules: BoxRules = BoxRules(),
                        seed: int = 0,
                        scene_size: int = 224,
                        instance_size: int = 96,
                        max_side: Optional[int] = 512) -> List[dict]:
    """One row per image: the image with scene 1 (blue), scene 2 (orange),
    their overlap (green, hatched) and the ``K`` instances (red, numbered);
    the two scene views as cut and resized (before the photometric
    augmentations) with the instances in their coordinates; the ``K``
    instance crops.

    Args:
        paths (Sequence[str]): The images.
        out (str): The PNG to write.
        proposals (dict[str, np.ndarray], optional): Boxes by image path;
            images missing from it get selective search proposals on the
            fly (:func:`image_proposals`).
        num_instances (int): ``K``. Defaults to 4.
        rules (BoxRules): Proposal and fallback rules.
        seed (int): ``np.random`` seed of the first image (``seed + i`` for
            image ``i``).
        scene_size (int): Scene view side. Defaults to 224.
        instance_size (int): Instance view side. Defaults to 96.
        max_side (int, optional): For on-the-fly proposals.

    Returns:
        list[dict]: Per image: ``path``, ``proposals`` (count), ``source``
        (see :class:`~ediy_mm.datasets.univip_transforms.UniVIPGeometry`),
        ``scenes``, ``boxes``; and ``file`` in the first.
    """
    views = TRANSFORMS.build(
        dict(
            type='UniVIPViews',
            view_pipelines=[[], []],
            num_instances=num_instances,
            scene_size=scene_size,
            instance_size=instance_size,
            min_size=rules.min_size,
            max_aspect=rules.max_aspect,
            max_iou=rules.max_iou))
    fig, axes = new_figure(len(paths), 3 + num_instances, cell=(2.6, 2.6))
    results = []
    state = np.random.get_state()
    try:
        for row, path in enumerate(paths):
            image = load_rgb(path)
            boxes = (proposals or {}).get(path)
            if boxes is None:
                boxes = image_proposals(path, rules, max_side)
            np.random.seed(seed + row)
            geometry = views.sample_geometry(image.size[::-1], boxes)
            _draw_row(axes[row], image, geometry, scene_size, instance_size)
            axes[row, 0].set_title(
                f'{osp.basename(path)}: {len(boxes)} proposals\n'
                f'instances from {geometry.source}',
                fontsize=8)
            results.append(
                dict(
                    path=path,
                    proposals=len(boxes),
                    source=geometry.source,
                    scenes=geometry.scenes.tolist(),
                    boxes=geometry.boxes.tolist()))
    finally:
        np.random.set_state(state)
    results[0]['file'] = save_figure(fig, out)
    return results


def _draw_row(axes, image: Image.Image, geometry, scene_size: int,
              instance_size: int) -> None:
    """One image's row of :func:`univip_views_figure`."""
    show_image(axes[0], np.asarray(image))
    for k, scene in enumerate(geometry.scenes):
        draw_box(axes[0], CropBox(*map(float, scene)), COLOURS[k],
                 f'scene {k + 1}')
    x1, y1, x2, y2 = geometry.overlap
    axes[0].add_patch(
        Rectangle((x1, y1),
                  x2 - x1,
                  y2 - y1,
                  fill=False,
                  hatch='//',
                  edgecolor=COLOURS[2],
                  linewidth=1))
    _draw_instances(axes[0], geometry.boxes, np.zeros(2), np.ones(2))
    for k, scene in enumerate(geometry.scenes):
        show_image(axes[1 + k], _crop(image, scene, scene_size),
                   f'scene {k + 1} ({scene_size} px)')
        scale = scene_size / (scene[2:] - scene[:2])
        _draw_instances(axes[1 + k], geometry.boxes, scene[:2], scale)
    for k, box in enumerate(geometry.boxes):
        show_image(axes[3 + k], _crop(image, box, instance_size),
                   f'instance {k + 1} ({instance_size} px)')
