"""MoCo v3's ViT with its fixed position embedding frozen from the start,
so that it trains under DDP without ``find_unused_parameters``."""
from mmpretrain.models import MoCoV3ViT
from mmpretrain.registry import MODELS

__all__ = ['FixedPosMoCoV3ViT']


@MODELS.register_module()
class FixedPosMoCoV3ViT(MoCoV3ViT):
    """mmpretrain's ``MoCoV3ViT`` whose fixed 2-D sin-cos position
    embedding takes no gradient from construction on.

    ``MoCoV3ViT`` freezes the embedding in ``init_weights``, but mmengine's
    Runner wraps the model in DDP before it calls ``init_weights``: DDP then
    waits for the embedding's gradient and fails at the second step,
    unless it searches for unused parameters at every step (mmpretrain's
    MoCo v3 configs set ``find_unused_parameters=True`` for this). Here the
    embedding is frozen in ``__init__`` too (not when it is loaded from a
    ``Pretrained`` checkpoint, where ``MoCoV3ViT`` trains it). Same
    arguments, parameters and names as ``MoCoV3ViT``: checkpoints load
    into either.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            self.pos_embed.requires_grad_(False)
