"""Images and views with known geometry for the analysis tools.

A view is a square crop of a photo resized to ``size x size``, as a float
tensor ``[3, size, size]`` in [0, 1] (RGB). Crops are kept as
:class:`CropBox` in the photo's pixel coordinates, so that the region of one
view that shows the same place as a region of another view is known.
"""
import os
import os.path as osp
import random
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..datasets.photo_folder import list_images

# ``list_images`` lives in ediy_mm.datasets (the package's one image lister);
# it is re-exported here for the analysis tools.
__all__ = [
    'CropBox', 'center_box', 'crop_view', 'list_images', 'load_rgb',
    'sample_crop_pair', 'to_numpy_image', 'write_instance_crops'
]


@dataclass(frozen=True)
class CropBox:
    """A crop ``[x0, x1) x [y0, y1)`` in photo pixel coordinates."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        """Area in square pixels."""
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def intersection(self, other: 'CropBox') -> float:
        """Area shared with ``other``."""
        width = min(self.x1, other.x1) - max(self.x0, other.x0)
        height = min(self.y1, other.y1) - max(self.y0, other.y0)
        return max(width, 0.0) * max(height, 0.0)


def load_rgb(path: str) -> Image.Image:
    """Open an image as RGB."""
    with Image.open(path) as img:
        return img.convert('RGB')


def center_box(width: int, height: int) -> CropBox:
    """The centred square of the shorter side (no augmentation)."""
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return CropBox(x0, y0, x0 + side, y0 + side)


def sample_crop_pair(width: int,
                     height: int,
                     seed: int,
                     scale: Tuple[float, float] = (0.5, 0.9),
                     min_overlap: float = 0.3) -> Tuple[CropBox, CropBox]:
    """Two random square crops that overlap, like two augmented views.

    Each side is ``U(scale) x`` the photo's shorter side, the position is
    uniform; pairs are drawn until the shared area is at least
    ``min_overlap`` of the smaller crop (with 100 tries; then the second
    crop is centred on the first).

    Args:
        width (int): Photo width.
        height (int): Photo height.
        seed (int): Seed of the draw (same seed, same crops).
        scale (tuple[float, float]): Side range, fraction of the shorter
            side. Defaults to (0.5, 0.9).
        min_overlap (float): Minimum shared fraction. Defaults to 0.3.

    Returns:
        tuple[CropBox, CropBox]: The two crops.
    """
    rng = random.Random(seed)
    short = min(width, height)

    def draw(centre: Optional[Tuple[float, float]] = None) -> CropBox:
        side = rng.uniform(*scale) * short
        if centre is None:
            x0 = rng.uniform(0, width - side)
            y0 = rng.uniform(0, height - side)
        else:
            x0 = min(max(centre[0] - side / 2, 0), width - side)
            y0 = min(max(centre[1] - side / 2, 0), height - side)
        return CropBox(x0, y0, x0 + side, y0 + side)

    for _ in range(100):
        box1, box2 = draw(), draw()
        if box1.intersection(box2) >= min_overlap * min(box1.area, box2.area):
            return box1, box2
    return box1, draw(((box1.x0 + box1.x1) / 2, (box1.y0 + box1.y1) / 2))


def crop_view(image: Image.Image, box: CropBox, size: int) -> torch.Tensor:
    """Crop ``box`` and resize it to ``size x size`` (bicubic).

    Returns:
        Tensor: ``[3, size, size]`` float in [0, 1].
    """
    view = image.resize((size, size),
                        Image.BICUBIC,
                        box=(box.x0, box.y0, box.x1, box.y1))
    array = np.asarray(view, dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def to_numpy_image(view: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] to an ``[H, W, 3]`` array for display."""
    return view.clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def write_instance_crops(paths: Sequence[str],
                         out_root: str,
                         crops: Dict[str, int],
                         size: int = 160,
                         scale: Tuple[float, float] = (0.1, 0.5),
                         seed: int = 0) -> Dict[str, str]:
    """A labelled folder per split from unlabelled photos, each photo a
    class (instance recognition), for the kNN monitor.

    Writes ``out_root/SPLIT/PHOTO/NNN.png``: ``crops[SPLIT]`` random square
    crops of each photo, each covering ``U(scale)`` of its area (at most
    its shorter side), resized to ``size``. Splits draw different crops.

    Args:
        paths (Sequence[str]): Photos; their file names (without extension)
            must differ.
        out_root (str): Output folder.
        crops (dict[str, int]): Crops per photo for each split, e.g.
            ``dict(train=8, val=4)``.
        size (int): Saved side in pixels. Defaults to 160.
        scale (tuple[float, float]): Area range. Defaults to (0.1, 0.5).
        seed (int): Seed of the crops. Defaults to 0.

    Returns:
        dict[str, str]: The folder of each split.
    """
    rng = random.Random(seed)
    names = [osp.splitext(osp.basename(p))[0] for p in paths]
    if len(set(names)) != len(names):
        raise ValueError('photos with the same file name would share a class')
    folders = {split: osp.join(out_root, split) for split in crops}
    for path, name in zip(paths, names):
        photo = load_rgb(path)
        width, height = photo.size
        for split, count in crops.items():
            os.makedirs(osp.join(folders[split], name), exist_ok=True)
            for i in range(count):
                side = min((rng.uniform(*scale) * width * height)**0.5, width,
                           height)
                x0 = rng.uniform(0, width - side)
                y0 = rng.uniform(0, height - side)
                photo.resize((size, size),
                             Image.BICUBIC,
                             box=(x0, y0, x0 + side, y0 + side)).save(
                                 osp.join(folders[split], name,
                                          f'{i:03d}.png'))
    return folders
