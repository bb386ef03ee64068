"""The res5 RoI head of MoCo's C4 detection protocol."""
import torch
from mmcv.cnn import build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.roi_heads.shared_heads import ResLayer
from mmdet.registry import MODELS
from mmdet.utils import ConfigType

__all__ = ['ExtraNormResLayer']


@MODELS.register_module()
class ExtraNormResLayer(ResLayer):
    """mmdet's ``ResLayer`` shared head with a norm layer after its output.

    MoCo (He et al., 2020) fine-tunes self-supervised backbones with SyncBN
    everywhere. In the C4 detectors the res5 stage runs as the RoI head on
    the pooled features and its output goes straight into the box and mask
    predictors; MoCo's ``Res5ROIHeadsExtraNorm`` adds one more norm there
    so that those predictors see normalised features. This is the same
    module for mmdet. mmpretrain registers a similar ``ResLayerExtraNorm``
    into mmdet's registry when it is imported; this one is registered under
    its own name so that mmdet configs get it without importing mmpretrain.

    The extra norm is named ``norm``: a ResNet checkpoint has no weights for
    it, so loading the res5 stage from one leaves it at its initialisation.

    Args:
        depth (int): Depth of the ResNet the stage comes from.
        stage (int): Index of the stage (3 is res5). Defaults to 3.
        norm_cfg (dict): Config of the norm layers, the extra one
            included. Defaults to ``dict(type='BN', requires_grad=True)``.
        **kwargs: Other arguments of :class:`mmdet.models.ResLayer`.
    """

    def __init__(self,
                 depth: int,
                 stage: int = 3,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 **kwargs) -> None:
        super().__init__(depth, stage=stage, norm_cfg=norm_cfg, **kwargs)
        block = ResNet.arch_settings[depth][0]
        channels = 64 * 2**stage * block.expansion
        self.add_module('norm', build_norm_layer(norm_cfg, channels)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the stage, then the extra norm.

        Args:
            x (Tensor): RoI features, ``[N, C, H, W]``.

        Returns:
            Tensor: Normalised stage output.
        """
        return self.norm(super().forward(x))
