"""Multi-view loading at the decode limit: decode, crop and flip in the data
workers; the photometric augmentations go to the training device."""
import hashlib
import io
import json
import math
from typing import List, Optional, Sequence, Tuple, TypeVar, Union

import cv2
import numpy as np
import torch
from mmcv.image.geometric import pillow_interp_codes
from mmcv.transforms import BaseTransform, Compose
from mmengine import fileio
from mmpretrain.datasets.transforms import MultiView
from mmpretrain.registry import TRANSFORMS
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

__all__ = [
    'DecodeMultiView', 'PHOTOMETRIC_KEY', 'draft_scale', 'expand_views',
    'photometric_fingerprint', 'resized_crop', 'split_view_pipeline'
]

#: The results key (packed with ``PackInputs(meta_keys=['photometric'])``)
#: that says where the photometric augmentations run: ``'cpu'`` (done by
#: the workers) or ``'device:<fingerprint>'`` (left to
#: :class:`~ediy_mm.models.PhotometricDataPreprocessor`, which checks that
#: its steps are those, see :func:`photometric_fingerprint`).
PHOTOMETRIC_KEY = 'photometric'
#: What the workers do on the device path.
GEOMETRIC = ('RandomResizedCrop', 'RandomFlip')
#: What the training device does (``ediy_mm.models.utils.
#: batch_photometric``).
PHOTOMETRIC = ('RandomApply', 'ColorJitter', 'RandomGrayscale', 'GaussianBlur',
               'Solarize')
#: JPEG draft (DCT-domain) scales and OpenCV's flags that decode at them.
DRAFT_SCALES = (8, 4, 2)
_DECODE_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8
}
#: Interpolations torchvision resizes as PIL does (antialiased, uint8).
_TORCH_RESIZE = ('bilinear', 'bicubic')

T = TypeVar('T')


def split_view_pipeline(
        pipeline: Sequence[dict]) -> Tuple[List[dict], List[dict]]:
    """Split an mmpretrain view pipeline into its geometric steps (the data
    workers') and its photometric steps (the training device's).

    Moving the flip before the photometric steps (MoCo v2 flips last)
    changes no distribution: they act on each pixel alone, or (the blur)
    the same way on a flipped image.

    Args:
        pipeline (Sequence[dict]): Transform configs.

    Returns:
        tuple[list[dict], list[dict]]: The ``RandomResizedCrop`` /
        ``RandomFlip`` configs and the others, each in pipeline order.
    """
    geometric, photometric = [], []
    for step in pipeline:
        name = step.get('type') if isinstance(step, dict) else None
        if name in GEOMETRIC:
            geometric.append(step)
        elif name in PHOTOMETRIC:
            photometric.append(step)
        else:
            raise ValueError(
                f'{name or type(step).__name__} cannot be split between the '
                f'data workers ({", ".join(GEOMETRIC)}) and the training '
                f'device ({", ".join(PHOTOMETRIC)}); use the stock pipeline '
                "(photometric='cpu') for it")
    return geometric, photometric


def expand_views(num_views: Union[int, Sequence[int]],
                 pipelines: Sequence[T]) -> List[Tuple[T, int]]:
    """mmpretrain ``MultiView``'s ``num_views`` / ``transforms`` pairing.

    Args:
        num_views (int | Sequence[int]): Views made by each pipeline.
        pipelines (Sequence): One per entry of ``num_views``.

    Returns:
        list[tuple]: ``(pipeline, count)`` in view order.
    """
    counts = [num_views] if isinstance(num_views, int) else list(num_views)
    if len(counts) != len(pipelines) or any(
            int(c) != c or c < 1 for c in counts):
        raise ValueError(f'num_views {num_views!r} must give a count >= 1 '
                         f'for each of the {len(pipelines)} pipelines')
    return list(zip(pipelines, counts))


def photometric_fingerprint(num_views: Union[int, Sequence[int]],
                            transforms: Sequence[Sequence[dict]]) -> str:
    """The mark of views whose photometric steps are left to the training
    device: ``'device:'`` and a digest of every view's photometric steps,
    so that the data side and the preprocessor can be checked to agree.

    Args:
        num_views (int | Sequence[int]): Views made by each pipeline.
        transforms (Sequence[Sequence[dict]]): The view pipelines.

    Returns:
        str: ``'device:<12 hex digits>'``.
    """

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k != '_scope_'}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    views = [
        plain(split_view_pipeline(pipeline)[1])
        for pipeline, count in expand_views(num_views, transforms)
        for _ in range(count)
    ]
    digest = hashlib.sha1(json.dumps(views, sort_keys=True).encode())
    return f'device:{digest.hexdigest()[:12]}'


def draft_scale(crops: Sequence[Tuple[int, int]],
                out_sizes: Sequence[Tuple[int, int]]) -> int:
    """The JPEG draft scale that every crop can afford: the largest of 8,
    4, 2 by which each crop is still at least its output size (else 1).

    Args:
        crops (Sequence[tuple[int, int]]): ``(h, w)`` of every crop, full
            image pixels.
        out_sizes (Sequence[tuple[int, int]]): ``(h, w)`` each is resized
            to.

    Returns:
        int: 1, 2, 4 or 8.
    """
    shrink = min(
        min(h / oh, w / ow) for (h, w), (oh, ow) in zip(crops, out_sizes))
    return next((s for s in DRAFT_SCALES if shrink >= s), 1)


def resized_crop(image: np.ndarray, box: Tuple[float, float, float, float],
                 size: Tuple[int, int], interpolation: str) -> np.ndarray:
    """Resize the part ``box = (x1, y1, x2, y2)`` of ``image`` to ``size``
    as mmpretrain's ``RandomResizedCrop(backend='pillow')`` does.

    Whole-pixel boxes in bilinear or bicubic: torchvision's antialiased
    uint8 ``resized_crop`` (within one level of PIL's, twice as fast);
    otherwise PIL's ``resize``, which takes a fractional box.

    Args:
        image (np.ndarray): ``[H, W, C]`` uint8.
        box (tuple[float, float, float, float]): Pixel edges, ends
            exclusive.
        size (tuple[int, int]): ``(h, w)`` out.
        interpolation (str): mmcv's name of the filter.

    Returns:
        np.ndarray: ``[h, w, C]`` uint8.
    """
    if interpolation in _TORCH_RESIZE and all(v == int(v) for v in box):
        x1, y1, x2, y2 = (int(v) for v in box)
        return TF.resized_crop(
            torch.from_numpy(image).permute(2, 0, 1),
            y1,
            x1,
            y2 - y1,
            x2 - x1,
            list(size),
            interpolation=InterpolationMode(interpolation),
            antialias=True).permute(1, 2, 0).numpy()
    x1, y1, x2, y2 = box
    left, top = math.floor(x1), math.floor(y1)
    region = image[top:min(math.ceil(y2), image.shape[0]),
                   left:min(math.ceil(x2), image.shape[1])]
    return np.array(  # a writable copy, as torch wants
        Image.fromarray(region).resize(
            tuple(size[::-1]),
            pillow_interp_codes[interpolation],
            box=(x1 - left, y1 - top, x2 - left, y2 - top)))


@TRANSFORMS.register_module()
class DecodeMultiView(BaseTransform):
    """mmpretrain's ``LoadImageFromFile`` + ``MultiView``, with the
    photometric augmentations left to the training device.

    ``num_views`` and ``transforms`` are mmpretrain ``MultiView``'s (whole
    view pipelines). With ``photometric='device'`` (the default), the
    worker only decodes, crops and flips:

    - the image is decoded once, by OpenCV as mmcv's ``LoadImageFromFile``
      does (BGR, EXIF orientation applied: the same pixels);
    - every view's ``RandomResizedCrop`` box and ``RandomFlip`` direction
      are drawn by mmpretrain's and mmcv's own transforms on the image's
      full-size geometry: the same ``np.random`` draws, in the same order,
      as the stock pipeline's geometric steps;
    - each crop is resized by torchvision (``resized_crop``, antialiased
      uint8 bilinear or bicubic, within one level of PIL's, which the
      stock pipeline uses; other interpolations: PIL) and flipped.

    The photometric steps go to :class:`~ediy_mm.models.
    PhotometricDataPreprocessor`, which takes the same ``num_views`` and
    ``transforms``.

    **Draft decoding.** When every crop of a JPEG shrinks by 2, 4 or 8 or
    more, the JPEG is decoded at that fraction of its size in the DCT
    domain (OpenCV's ``IMREAD_REDUCED_COLOR_*``, libjpeg's scaled IDCT),
    and each crop box, drawn on the full-size geometry, is divided by the
    scale: a fractional box, which PIL's ``resize(box=...)`` resamples
    exactly. The crops cover the same part of the image as at full size;
    only the pixels differ slightly (the DCT's downscale, then the
    resize's, instead of the resize's alone). ``draft=False`` decodes at
    full size.

    With ``photometric='cpu'`` this is exactly mmpretrain's stock path,
    ``LoadImageFromFile`` then ``MultiView``.

    **Required keys:** ``img_path``.

    **Added keys:** ``img`` (the list of ``[h, w, 3]`` uint8 BGR views),
    ``img_shape``, ``ori_shape``, ``photometric`` (``'cpu'``, or
    :func:`photometric_fingerprint`'s mark: pack it with
    ``PackInputs(meta_keys=['photometric'])``).

    Args:
        num_views (int | Sequence[int]): Views made by each pipeline.
        transforms (Sequence[Sequence[dict]]): The view pipelines.
        photometric (str): ``'device'`` or ``'cpu'``. Defaults to
            ``'device'``.
        draft (bool): JPEG draft decoding. Defaults to True.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 num_views: Union[int, Sequence[int]],
                 transforms: Sequence[Sequence[dict]],
                 photometric: str = 'device',
                 draft: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        if photometric not in ('device', 'cpu'):
            raise ValueError("photometric must be 'device' or 'cpu', got "
                             f'{photometric!r}')
        self.photometric = photometric
        self.mark = 'cpu' if photometric == 'cpu' else photometric_fingerprint(
            num_views, transforms)
        self.draft = draft
        self.backend_args = backend_args
        if photometric == 'cpu':
            self.stock = Compose([
                TRANSFORMS.build(
                    dict(type='LoadImageFromFile', backend_args=backend_args)),
                MultiView(transforms=transforms, num_views=num_views)
            ])
            return
        self.views = []
        for pipeline, count in expand_views(num_views, transforms):
            geometric = split_view_pipeline(pipeline)[0]
            names = [step['type'] for step in geometric]
            if names not in (['RandomResizedCrop'],
                             ['RandomResizedCrop', 'RandomFlip']):
                raise ValueError(
                    'DecodeMultiView needs one RandomResizedCrop, then at '
                    f'most one RandomFlip, in each view pipeline; got {names}')
            steps = [TRANSFORMS.build(step) for step in geometric]
            if steps[0].backend != 'pillow':
                raise ValueError(
                    "DecodeMultiView resizes as PIL: RandomResizedCrop "
                    f"needs backend='pillow', got {steps[0].backend!r}")
            self.views += [(steps[0], steps[1] if len(steps) > 1 else None)
                           ] * count

    def _draw(self, shape: Tuple[int, int]) -> list:
        """Every view's crop ``(top, left, h, w)`` and flip direction."""
        # rand_crop_params reads the shape only: a zero-stride stand-in
        stand_in = np.broadcast_to(np.uint8(0), shape)
        return [(crop.rand_crop_params(stand_in),
                 flip._choose_direction() if flip else None)
                for crop, flip in self.views]

    def transform(self, results: dict) -> dict:
        """Load the image and make its views; see the class docstring."""
        results[PHOTOMETRIC_KEY] = self.mark
        if self.photometric == 'cpu':
            return self.stock(results)
        path = results['img_path']
        data = fileio.get(path, backend_args=self.backend_args)
        buffer = np.frombuffer(data, np.uint8)
        if data[:2] == b'\xff\xd8':  # a JPEG: geometry from its header
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
                if header.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    width, height = height, width  # OpenCV turns it
            draws = self._draw((height, width))
            scale = draft_scale(
                [box[2:] for box, _ in draws],
                [crop.scale for crop, _ in self.views]) if self.draft else 1
            image = cv2.imdecode(buffer, _DECODE_FLAGS[scale])
            expected = (math.ceil(height / scale), math.ceil(width / scale))
        else:
            image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
            expected = height, width = (0, 0) if image is None else (
                image.shape[:2])
            draws, scale = self._draw(expected), 1
        if image is None or image.shape[:2] != expected:
            raise ValueError(
                f'OpenCV cannot decode {path} at the size its header gives '
                f'({expected}); load it with photometric=\'cpu\'')
        views = []
        for ((top, left, h, w), direction), (crop,
                                             _) in zip(draws, self.views):
            view = resized_crop(image, (left / scale, top / scale,
                                        (left + w) / scale, (top + h) / scale),
                                crop.scale, crop.interpolation)
            if direction in ('horizontal', 'diagonal'):
                view = view[:, ::-1]
            if direction in ('vertical', 'diagonal'):
                view = view[::-1]
            views.append(view)
        results['img'] = views
        results['img_shape'] = views[0].shape[:2]
        results['ori_shape'] = (height, width)
        return results

    def __repr__(self) -> str:
        if self.photometric == 'cpu':
            return f"{type(self).__name__}(photometric='cpu', {self.stock})"
        return (f"{type(self).__name__}(photometric='device', "
                f'draft={self.draft}, views={self.views})')
