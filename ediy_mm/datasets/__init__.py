from .decode_views import PHOTOMETRIC_KEY, DecodeMultiView, split_view_pipeline
from .photo_folder import (IMAGE_EXTENSIONS, CorruptImageError,
                           PhotoFolderDataset, export_skimage_photos,
                           image_header_error, iter_images, list_images)
from .univip_dataset import UniVIPDataset
from .univip_transforms import UniVIPViews
from .worker_seed import epoch_seeded_worker_init_fn

__all__ = [
    'IMAGE_EXTENSIONS', 'PHOTOMETRIC_KEY', 'CorruptImageError',
    'DecodeMultiView', 'split_view_pipeline', 'PhotoFolderDataset',
    'epoch_seeded_worker_init_fn', 'export_skimage_photos',
    'image_header_error', 'iter_images', 'list_images', 'UniVIPDataset',
    'UniVIPViews'
]
