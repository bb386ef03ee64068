from .photo_folder import (CorruptImageError, PhotoFolderDataset,
                           export_skimage_photos)

__all__ = ['CorruptImageError', 'PhotoFolderDataset', 'export_skimage_photos']
