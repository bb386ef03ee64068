"""mmcv 2.1.0 on numpy >= 2: a hue shift that does not crash.

``mmcv.adjust_hue`` computes ``np.uint8(hue_factor * 255)``, which numpy 2
refuses for a negative factor (``OverflowError: Python integer -7 out of
bounds for uint8``). mmpretrain's ``ColorJitter`` (BYOL's augmentation, hue
0.1) draws negative factors half of the time, so BYOL and E-DIY pre-training
crash within a few images. :func:`adjust_hue` keeps mmcv's behaviour on
numpy 1 (the shift wraps around the uint8 hue circle) and is installed as
``mmcv.adjust_hue`` by :func:`install_numpy2_compat`.
"""
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmcv.image import photometric
from PIL import Image

__all__ = ['adjust_hue', 'install_numpy2_compat']


def adjust_hue(img: np.ndarray,
               hue_factor: float,
               backend: Optional[str] = None) -> np.ndarray:
    """Rotate the hue of a BGR uint8 image by ``hue_factor`` of a turn.

    Args:
        img (ndarray): BGR image ``[H, W, 3]``.
        hue_factor (float): Shift in ``[-0.5, 0.5]``.
        backend (str, optional): ``'cv2'`` or ``'pillow'``; default mmcv's
            image backend.

    Returns:
        ndarray: The image with its hue shifted, same dtype.
    """
    backend = backend or photometric.imread_backend
    if backend not in ('cv2', 'pillow'):
        raise ValueError(f"backend must be 'cv2' or 'pillow', got {backend}")
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor {hue_factor} is not in [-0.5, 0.5]')
    # numpy 1's np.uint8(negative int) wrapped modulo 256
    shift = np.uint8(int(hue_factor * 255) % 256)
    if backend == 'pillow':
        hsv = np.array(Image.fromarray(img[..., ::-1]).convert('HSV'))
        with np.errstate(over='ignore'):
            hsv[..., 0] += shift
        rgb = Image.fromarray(hsv, 'HSV').convert('RGB')
        return np.array(rgb, dtype=img.dtype)[..., ::-1]
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
    with np.errstate(over='ignore'):
        hsv[..., 0] += shift
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(img.dtype)


def install_numpy2_compat() -> None:
    """Use :func:`adjust_hue` for ``mmcv.adjust_hue`` on numpy >= 2."""
    if int(np.__version__.split('.')[0]) >= 2:
        mmcv.adjust_hue = mmcv.image.adjust_hue = adjust_hue
