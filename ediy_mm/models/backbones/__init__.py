from .mocov3_vit import FixedPosMoCoV3ViT
from .vit_cls_map import ClsAndMapMoCoV3ViT, ClsAndMapViT

__all__ = ['ClsAndMapViT', 'ClsAndMapMoCoV3ViT', 'FixedPosMoCoV3ViT']
