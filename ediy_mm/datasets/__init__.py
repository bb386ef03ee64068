from .photo_folder import PhotoFolderDataset, export_skimage_photos

__all__ = ['PhotoFolderDataset', 'export_skimage_photos']
