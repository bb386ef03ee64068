import logging
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

__all__ = [
    'IMAGE_EXTENSIONS', 'CorruptImageError', 'PhotoFolderDataset',
    'export_skimage_photos', 'image_header_error', 'iter_images', 'list_images'
]

#: File name endings (lower case) that :func:`list_images` takes for images.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')

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


def iter_images(folder: str,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Iterator[str]:
    """The image files under ``folder``, recursively (symbolic links
    followed), in ``os.walk``'s order.

    Args:
        folder (str): The folder.
        extensions (Sequence[str]): Lower-case name endings of images.
            Defaults to :data:`IMAGE_EXTENSIONS`.

    Yields:
        str: Paths ``folder/.../name``.
    """
    extensions = tuple(extensions)
    for root, _, names in os.walk(folder, followlinks=True):
        for name in names:
            if name.lower().endswith(extensions):
                yield osp.join(root, name)


def list_images(folder: Optional[str] = None,
                limit: Optional[int] = None,
                relative: bool = False) -> List[str]:
    """The images of a folder, recursively, sorted: the one image lister of
    the package (the analysis tools, the demo and UniVIP's proposal tool use
    it).

    Args:
        folder (str, optional): Image folder. Defaults to None: the photos
            shipped by scikit-image (exported once to
            ``~/.cache/ediy_mm/skimage_photos``).
        limit (int, optional): Keep the first ``limit`` images.
        relative (bool): Paths relative to ``folder`` (as a proposal file
            stores them) instead of ``folder/...``. Defaults to False.

    Returns:
        list[str]: Image paths.

    Raises:
        FileNotFoundError: If ``folder`` is not a folder or holds no image.
    """
    if folder is None:
        folder = osp.expanduser(DEFAULT_ROOT)
        export_skimage_photos(folder)
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder!r} does not exist')
    paths = sorted(iter_images(folder))
    if not paths:
        raise FileNotFoundError(f'no image ({", ".join(IMAGE_EXTENSIONS)}) '
                                f'in {folder!r}')
    if relative:
        paths = [osp.relpath(path, folder) for path in paths]
    return paths[:limit]


def image_header_error(path: str) -> Optional[Exception]:
    """Why PIL cannot read the header of an image file, or None if it can
    (a cheap check: no pixel is decoded).

    Args:
        path (str): The file.

    Returns:
        Exception, optional: The error PIL raised.
    """
    from PIL import Image
    try:
        with Image.open(path):
            return None
    except Exception as err:
        return err


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

    When the data set is built, the header of every image is read (a cheap
    check: no pixel is decoded), so that a file that is not an image at all
    is found before training starts rather than hours in.

    Args:
        data_root (str, optional): Image folder (searched recursively).
            Defaults to None (scikit-image's photos).
        repeat (int): How many times each image is listed. Defaults to 1.
        skip_unreadable (bool): What to do with an image that cannot be
            read. False (default): fail with :class:`CorruptImageError`
            naming the file (at build time if its header is bad, else when
            it is loaded). True: leave it out with one warning naming it
            (a bad header: when the data set is built; a bad body: the
            first time a process loads it, then another image is drawn in
            its place), and count it in :attr:`skipped`.
        check_headers (bool): Read every image header when the data set is
            built. Defaults to True.
        **kwargs: Passed to :class:`mmpretrain.datasets.CustomDataset`.

    Attributes:
        skipped (set[str]): The unreadable images left out by this process.
    """

    def __init__(self,
                 data_root: Optional[str] = None,
                 repeat: int = 1,
                 skip_unreadable: bool = False,
                 check_headers: bool = True,
                 **kwargs) -> None:
        if data_root is None:
            data_root = osp.expanduser(DEFAULT_ROOT)
            export_skimage_photos(data_root)
        elif not osp.isdir(osp.expanduser(data_root)):
            raise FileNotFoundError(
                f'Image folder {data_root!r} does not exist; set '
                'train_dataloader.dataset.data_root to a folder of images.')
        self.repeat = repeat
        self.skip_unreadable = skip_unreadable
        self.check_headers = check_headers
        self.skipped = set()
        super().__init__(
            data_root=osp.expanduser(data_root), with_label=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        """List the images, ``repeat`` times."""
        if not self._has_image(self.data_root):
            raise FileNotFoundError(
                f'No image ({", ".join(self.extensions)}) in '
                f'{self.data_root!r} or its sub-folders.')
        data_list = super().load_data_list()
        if self.check_headers:
            data_list = self._readable(data_list)
        return data_list * self.repeat

    def _readable(self, data_list: List[dict]) -> List[dict]:
        """The entries whose image header can be read; the others raise
        (or are skipped, with ``skip_unreadable``)."""
        kept, bad = [], []
        for info in data_list:
            err = image_header_error(info['img_path'])
            if err is None:
                kept.append(info)
            else:
                bad.append(f"{info['img_path']} ({type(err).__name__})")
                self._skip(info['img_path'], err)
        if bad and not self.skip_unreadable:
            raise CorruptImageError(
                f'{len(bad)} of {len(data_list)} files of {self.data_root} '
                f'are not readable images: {", ".join(bad[:5])}'
                f'{" ..." if len(bad) > 5 else ""}. Remove them, or set '
                'train_dataloader.dataset.skip_unreadable=True to skip them.')
        if not kept:
            raise FileNotFoundError(
                f'No readable image in {self.data_root!r}.')
        return kept

    def _skip(self, path: str, err: Exception) -> None:
        """Warn once about the unreadable image ``path`` and count it."""
        if not self.skip_unreadable or path in self.skipped:
            return
        self.skipped.add(path)
        print_log(
            f'Skipping unreadable image {path} ({type(err).__name__}: '
            f'{err}); {len(self.skipped)} skipped so far.',
            logger='current',
            level=logging.WARNING)

    def prepare_data(self, idx: int):
        """Run the pipeline on image ``idx``; a failure names the file, or
        (``skip_unreadable``) returns None so that mmengine draws another
        image."""
        try:
            return super().prepare_data(idx)
        except Exception as err:
            path = self.get_data_info(idx)['img_path']
            if self.skip_unreadable:
                self._skip(path, err)
                return None
            raise CorruptImageError(f'Cannot read or transform image {path}: '
                                    f'{type(err).__name__}: {err}') from err

    def _has_image(self, folder: str) -> bool:
        """Whether ``folder`` holds an image file, searched recursively."""
        return next(iter_images(folder, self.extensions), None) is not None
