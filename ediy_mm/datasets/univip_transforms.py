"""UniVIP's views (arXiv 2203.06965): two scene crops whose overlap holds
``K`` instances, and the instances themselves."""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

from .decode_views import (PHOTOMETRIC_KEY, photometric_fingerprint,
                           split_view_pipeline)
from .univip_boxes import BoxRules, boxes_inside, intersection, random_boxes

__all__ = ['UniVIPGeometry', 'UniVIPViews']

#: Transforms that move or resize pixels: :class:`UniVIPViews` does the
#: cropping itself, so ``view_pipelines`` may not hold them.
_GEOMETRIC = ('Crop', 'Resize', 'Rotate', 'Affine', 'Pad', 'Shear',
              'Translate')


@dataclass
class UniVIPGeometry:
    """Where a UniVIP sample's views come from, in pixels of the original
    image (boxes ``[x1, y1, x2, y2]``, ends exclusive).

    Attributes:
        scenes (np.ndarray): The two scene crops, ``[2, 4]`` int64.
        overlap (np.ndarray): Their intersection, ``[4]`` int64.
        boxes (np.ndarray): The ``K`` instance boxes, inside ``overlap``,
            ``[K, 4]`` int64, in the order of the instance views.
        source (str): ``'proposals'`` (``K`` of the image's proposals),
            ``'random'`` (random boxes obeying the rules, the paper's
            fallback) or ``'grid'`` (disjoint cells of an overlap too small
            for the rules).
        tries (int): Scene pairs drawn.
    """

    scenes: np.ndarray
    overlap: np.ndarray
    boxes: np.ndarray
    source: str
    tries: int


@TRANSFORMS.register_module()
class UniVIPViews(BaseTransform):
    """Two scene views and ``K`` instances in their overlap (UniVIP's
    scene views and instances).

    Two random resized crops (as :class:`mmpretrain.datasets.transforms.
    RandomResizedCrop`, BYOL's area and aspect ranges) are redrawn, up to
    ``max_tries`` pairs, until their overlap holds ``num_instances`` of the
    image's proposals; ``num_instances`` of those are taken at random.
    Otherwise the pair with the largest overlap is kept (the first crop
    twice if no pair overlapped) and ``num_instances`` random boxes of the
    overlap obeying the proposal rules are drawn
    (:func:`~ediy_mm.datasets.univip_boxes.random_boxes`). The scenes are
    resized to ``scene_size`` and every instance is cropped from the
    original image and resized to ``instance_size``.

    Each view ``v`` then goes through ``view_pipelines[v]`` (BYOL's
    photometric augmentations and flip): the scene of view ``v`` and, drawn
    independently, a copy of every instance, so each instance exists twice,
    once with each view's augmentations.

    **Required keys:** ``img`` (``[H, W, 3]``), ``proposals`` (``[N, 4]``
    boxes, see :class:`UniVIPDataset`; may be empty).

    **Modified keys:** ``img`` becomes the list ``[scene_1, scene_2,
    instance_1 of view 1, ..., instance_K of view 1, instance_1 of view 2,
    ..., instance_K of view 2]``; ``img_shape``.

    With ``photometric='device'`` the view pipelines' flips run here and
    their photometric steps are left to :class:`~ediy_mm.models.
    PhotometricDataPreprocessor` (``num_views=[1, 1, K, K]``,
    ``transforms`` the two view pipelines twice: scenes, then instances).

    **Added keys:** ``univip_scenes`` (``[2, 4]``), ``univip_boxes``
    (``[K, 4]``) float32 in original pixels, in the order of the instance
    views, and ``univip_source`` (see :class:`UniVIPGeometry`): pack them
    with ``PackInputs(algorithm_keys=['univip_scenes', 'univip_boxes',
    'univip_source'])``; ``photometric`` (``'cpu'`` or the mark of
    :func:`~ediy_mm.datasets.decode_views.photometric_fingerprint`, for
    ``PackInputs(meta_keys=['photometric'])``).

    Args:
        view_pipelines (Sequence[list[dict]]): Two pipelines of photometric
            transforms (no crop or resize: this transform does those).
        num_instances (int): ``K``. Defaults to 4.
        scene_size (int): Scene view side. Defaults to 224.
        instance_size (int): Instance view side. Defaults to 96.
        max_tries (int): Scene pairs drawn before the fallback. Defaults to
            20.
        crop_ratio_range (tuple[float, float]): Scene crop area range, as a
            fraction of the image. Defaults to (0.08, 1.0).
        aspect_ratio_range (tuple[float, float]): Scene crop aspect range.
            Defaults to (3/4, 4/3).
        min_size (float): The rules' smallest box side for the random
            fallback boxes, pixels. Defaults to 64.
        max_aspect (float): The rules' largest aspect ratio. Defaults to 3.
        max_iou (float): The rules' largest IoU between two boxes. Defaults
            to 0.5.
        interpolation (str): Resize interpolation. Defaults to 'bicubic'.
        backend (str): Resize backend, 'cv2' or 'pillow'. Defaults to
            'pillow' (BYOL's).
        photometric (str): Where the view pipelines' photometric steps run:
            ``'cpu'`` (here) or ``'device'``. Defaults to ``'cpu'``.
    """

    def __init__(self,
                 view_pipelines: Sequence[List[dict]],
                 num_instances: int = 4,
                 scene_size: int = 224,
                 instance_size: int = 96,
                 max_tries: int = 20,
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 min_size: float = 64,
                 max_aspect: float = 3.,
                 max_iou: float = 0.5,
                 interpolation: str = 'bicubic',
                 backend: str = 'pillow',
                 photometric: str = 'cpu') -> None:
        if len(view_pipelines) != 2:
            raise ValueError('UniVIPViews needs view_pipelines for exactly '
                             f'2 views, got {len(view_pipelines)}')
        for view, pipeline in enumerate(view_pipelines):
            for step in pipeline:
                name = step['type'] if isinstance(
                    step, dict) else type(step).__name__
                name = name if isinstance(name, str) else name.__name__
                if any(word in name for word in _GEOMETRIC):
                    raise ValueError(
                        f'view_pipelines[{view}] holds {name}: UniVIPViews '
                        'crops and resizes the views itself (instance boxes '
                        'must stay where they are); keep only photometric '
                        'transforms and flips there.')
        for name, value in (('num_instances', num_instances), ('scene_size',
                                                               scene_size),
                            ('instance_size', instance_size), ('max_tries',
                                                               max_tries)):
            if int(value) != value or value < 1:
                raise ValueError(f'{name} must be an integer >= 1, got '
                                 f'{value!r}')
        if photometric not in ('cpu', 'device'):
            raise ValueError("photometric must be 'cpu' or 'device', got "
                             f'{photometric!r}')
        self.mark = 'cpu'
        if photometric == 'device':  # the flips only
            self.mark = photometric_fingerprint(
                [1, 1, num_instances, num_instances], [*view_pipelines] * 2)
            view_pipelines = [
                split_view_pipeline(pipeline)[0] for pipeline in view_pipelines
            ]
        self.pipelines = [Compose(pipeline) for pipeline in view_pipelines]
        self.num_instances = num_instances
        self.scene_size = scene_size
        self.instance_size = instance_size
        self.max_tries = max_tries
        self.rules = BoxRules(min_size, max_aspect, max_iou)
        self.crop = RandomResizedCrop(
            scale=scene_size,
            crop_ratio_range=crop_ratio_range,
            aspect_ratio_range=aspect_ratio_range,
            interpolation=interpolation,
            backend=backend)

    def _scene_box(self, stand_in: np.ndarray) -> np.ndarray:
        """One random resized crop ``[x1, y1, x2, y2]``."""
        top, left, height, width = self.crop.rand_crop_params(stand_in)
        return np.array([left, top, left + width, top + height],
                        dtype=np.int64)

    def sample_geometry(self, img_shape: Tuple[int, int],
                        proposals: Optional[np.ndarray]) -> UniVIPGeometry:
        """Draw the two scene crops and the ``K`` instance boxes (with
        ``np.random``, as mmpretrain's transforms do).

        Args:
            img_shape (tuple[int, int]): ``(H, W)`` of the original image.
            proposals (np.ndarray, optional): ``[N, 4]`` proposal boxes.

        Returns:
            UniVIPGeometry: The boxes.
        """
        # rand_crop_params reads the shape only: a zero-stride stand-in.
        stand_in = np.broadcast_to(np.uint8(0), tuple(img_shape[:2]))
        proposals = np.zeros(
            (0, 4)) if proposals is None else np.asarray(proposals).reshape(
                -1, 4)
        best, best_area = None, -1
        for tries in range(1, self.max_tries + 1):
            scenes = np.stack([self._scene_box(stand_in) for _ in range(2)])
            overlap = intersection(*scenes)
            if overlap is None:
                continue
            inside = np.flatnonzero(boxes_inside(proposals, overlap))
            if len(inside) >= self.num_instances:
                chosen = np.random.choice(
                    inside, self.num_instances, replace=False)
                return UniVIPGeometry(scenes, overlap,
                                      proposals[chosen].astype(np.int64),
                                      'proposals', tries)
            area = np.prod(overlap[2:] - overlap[:2])
            if area > best_area:
                best, best_area = (scenes, overlap), area
        if best is None:  # no pair overlapped: view 2 crops what view 1 does
            best = (np.stack([scenes[0], scenes[0]]), scenes[0])
        boxes, source = random_boxes(best[1], self.num_instances, self.rules)
        return UniVIPGeometry(best[0], best[1], boxes, source, self.max_tries)

    def _cut(self, img: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
        """``img[y1:y2, x1:x2]`` resized to ``size x size``."""
        x1, y1, x2, y2 = (int(v) for v in box)
        return mmcv.imresize(
            img[y1:y2, x1:x2], (size, size),
            interpolation=self.crop.interpolation,
            backend=self.crop.backend)

    def _augment(self, view: int, img: np.ndarray) -> np.ndarray:
        """``view_pipelines[view]`` on one crop."""
        return self.pipelines[view](dict(img=img.copy()))['img']

    def transform(self, results: dict) -> dict:
        """Cut and augment the views; see the class docstring."""
        if 'proposals' not in results:
            raise KeyError("UniVIPViews needs results['proposals'] (the "
                           "image's boxes): use UniVIPDataset")
        img = results['img']
        geometry = self.sample_geometry(img.shape[:2], results['proposals'])
        scenes = [
            self._augment(view, self._cut(img, box, self.scene_size))
            for view, box in enumerate(geometry.scenes)
        ]
        instances = [
            self._cut(img, box, self.instance_size) for box in geometry.boxes
        ]
        results['img'] = scenes + [
            self._augment(view, instance) for view in (0, 1)
            for instance in instances
        ]
        results['img_shape'] = (self.scene_size, self.scene_size)
        results['univip_scenes'] = geometry.scenes.astype(np.float32)
        results['univip_boxes'] = geometry.boxes.astype(np.float32)
        results['univip_source'] = geometry.source
        results[PHOTOMETRIC_KEY] = self.mark
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_instances={self.num_instances}, '
                f'scene_size={self.scene_size}, instance_size='
                f'{self.instance_size}, max_tries={self.max_tries}, '
                f'rules={self.rules}, pipelines={self.pipelines})')
