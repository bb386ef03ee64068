import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

__all__ = ['CorruptImageError', 'PhotoFolderDataset', 'export_skimage_photos']

#: Colour photographs that scikit-image ships inside its wheel.
SKIMAGE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket',
                  'immunohistochemistry', 'hubble_deep_field', 'motorcycle',
                  'grass', 'gravel', 'brick', 'camera', 'moon')

DEFAULT_ROOT = osp.join('~', '.cache', 'ediy_mm', 'skimage_photos')


def export_skimage_photos(folder: str) -> List[str]:
    """Write the photos shipped by ``skimage.data`` into ``folder``.

    Photos are written once, atomically (safe when several ranks start at
    the same time), as RGB PNG files. Photos that scikit-image would have
    to download are skipped.

    Args:
        folder (str): Output folder.

    Returns:
        list[str]: Paths of the exported photos.
    """
    from PIL import Image
    from skimage import data

    folder = osp.expanduser(folder)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in SKIMAGE_PHOTOS:
        path = osp.join(folder, f'{name}.png')
        if not osp.exists(path):
            try:
                img = np.asarray(getattr(data, name)())
            except Exception:  # not bundled: would need a download
                continue
            if img.ndim == 2:
                img = np.stack([img] * 3, axis=-1)
            tmp = f'{path}.{os.getpid()}.tmp'
            Image.fromarray(img[..., :3].astype(np.uint8)).save(tmp, 'PNG')
            os.replace(tmp, path)
        paths.append(path)
    return paths


class CorruptImageError(OSError):
    """An image of the data set could not be read or transformed; the
    message names the file."""


@DATASETS.register_module()
class PhotoFolderDataset(CustomDataset):
    """Unlabelled images of a folder, by default scikit-image's photos.

    With ``data_root=None`` the colour photos shipped by ``skimage.data`` are
    exported to ``~/.cache/ediy_mm/skimage_photos`` and used: a real-photo
    data set that needs no download, for demos and tests. Every image is
    listed ``repeat`` times, so that an epoch draws many random crops of
    each.

    Args:
        data_root (str, optional): Image folder (searched recursively).
            Defaults to None (scikit-image's photos).
        repeat (int): How many times each image is listed. Defaults to 1.
        **kwargs: Passed to :class:`mmpretrain.datasets.CustomDataset`.
    """

    def __init__(self,
                 data_root: Optional[str] = None,
                 repeat: int = 1,
                 **kwargs) -> None:
        if data_root is None:
            data_root = osp.expanduser(DEFAULT_ROOT)
            export_skimage_photos(data_root)
        elif not osp.isdir(osp.expanduser(data_root)):
            raise FileNotFoundError(
                f'Image folder {data_root!r} does not exist; set '
                'train_dataloader.dataset.data_root to a folder of images.')
        self.repeat = repeat
        super().__init__(
            data_root=osp.expanduser(data_root), with_label=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        """List the images, ``repeat`` times."""
        if not self._has_image(self.data_root):
            raise FileNotFoundError(
                f'No image ({", ".join(self.extensions)}) in '
                f'{self.data_root!r} or its sub-folders.')
        return super().load_data_list() * self.repeat

    def prepare_data(self, idx: int):
        """Run the pipeline on image ``idx``; a failure names the file."""
        try:
            return super().prepare_data(idx)
        except Exception as err:
            path = self.get_data_info(idx)['img_path']
            raise CorruptImageError(
                f'Cannot read or transform image {path}: '
                f'{type(err).__name__}: {err}') from err

    def _has_image(self, folder: str) -> bool:
        """Whether ``folder`` holds an image file, searched recursively."""
        for _, _, files in os.walk(folder, followlinks=True):
            if any(name.lower().endswith(self.extensions) for name in files):
                return True
        return False
