from .decode_views import PHOTOMETRIC_KEY, DecodeMultiView, split_view_pipeline
from .photo_folder import (CorruptImageError, PhotoFolderDataset,
                           export_skimage_photos)
from .univip_dataset import UniVIPDataset
from .univip_transforms import UniVIPViews
from .worker_seed import epoch_seeded_worker_init_fn

__all__ = [
    'PHOTOMETRIC_KEY', 'CorruptImageError', 'DecodeMultiView',
    'PhotoFolderDataset', 'epoch_seeded_worker_init_fn',
    'export_skimage_photos', 'split_view_pipeline', 'UniVIPDataset',
    'UniVIPViews'
]
