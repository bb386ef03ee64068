from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..utils.backbone_grid import check_patch_fit
from ..utils.momentum_target import MomentumTargetMixin

__all__ = ['UniVIP']


@MODELS.register_module()
class UniVIP(MomentumTargetMixin, BaseSelfSupervisor):
    """UniVIP: scene-scene, scene-instance and instance-instance learning.

    Implementation of `UniVIP: A Unified Framework for Self-Supervised
    Visual Pre-training <https://arxiv.org/abs/2203.06965>`_ (CVPR 2022) on
    BYOL: an online backbone + projector (``neck``) + :class:`UniVIPHead`
    (predictor, scene-instance linear layer, the three losses) and a
    :class:`~ediy_mm.models.utils.MomentumTarget` of backbone and projector,
    moved once per optimizer step (:class:`MomentumTargetMixin`; no hook
    needed).

    The inputs come from :class:`~ediy_mm.datasets.UniVIPViews`: the two
    scene views, then the ``K`` instances cut with view 1's augmentations,
    then the same ``K`` with view 2's. As in the paper, each image has one
    instance set: its online embeddings ``O`` come from the instances with
    view 1's augmentations, its target embeddings ``T`` from the same boxes
    with view 2's (``docs/univip.md``, readings). Each group runs through a
    network in one pass (BN statistics per group, as BYOL per view): three
    online passes (scene 1, scene 2, instances) and three target passes
    (two without the instance term) per step.

    Args:
        backbone (dict): Online backbone config.
        neck (dict): Projector config (``NonLinearNeck`` with pooling).
        head (dict): :class:`UniVIPHead` config.
        base_momentum (float): Target momentum ``1 - τ_base``. Defaults to
            0.01 (τ_base = 0.99, mmpretrain's BYOL).
        pretrained (str, optional): Checkpoint of the whole model.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 base_momentum: float = 0.01,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.build_momentum_target(base_momentum)

    def split_views(
        self, inputs: Sequence[Tensor]
    ) -> Tuple[List[Tensor], Optional[List[Tensor]]]:
        """The two scene batches and the two instance batches of a UniVIP
        input list, checked.

        Args:
            inputs (Sequence[Tensor]): ``2 + 2K`` tensors, ``[B, 3, H, W]``
                (scenes) and ``[B, 3, h, w]`` (instances).

        Returns:
            tuple: The scenes ``[B, 3, H, W]`` x 2 and the instances of each
            view ``[B, K, 3, h, w]`` x 2 (None when no loss term uses them).

        Raises:
            ValueError: Naming what is missing or mismatched, and the sizes
                when a patch embedding (a ViT's) would pad the views.
        """
        num = self.head.num_instances
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2 + 2 * num:
            found = (f'{len(inputs)} views' if isinstance(
                inputs, (list, tuple)) else type(inputs).__name__)
            raise ValueError(
                f'UniVIP needs 2 scene views + 2 x {num} instance views per '
                f'image (UniVIPViews with num_instances={num}), got {found}')
        scenes = list(inputs[:2])
        if scenes[0].shape != scenes[1].shape or len(
            {x.shape
             for x in inputs[2:]}) != 1:
            raise ValueError(
                'the scene views must share one shape and the instance views '
                f'another, got {[tuple(x.shape) for x in inputs]}')
        check_patch_fit(self.backbone, scenes[0],
                        'the scene views (UniVIPViews.scene_size)')
        check_patch_fit(self.backbone, inputs[2],
                        'the instance crops (UniVIPViews.instance_size)')
        if not self.head.uses_instances:
            return scenes, None
        return scenes, [
            torch.stack(list(inputs[2 + v * num:2 + (v + 1) * num]), 1)
            for v in (0, 1)
        ]

    @staticmethod
    def _embed(network, images: Tensor) -> Tensor:
        """Projections ``[..., D]`` of images ``[..., 3, h, w]``."""
        return network(images.flatten(0, -4))[0].view(*images.shape[:-3], -1)

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """Compute ``loss_scene``, ``loss_scene_instance`` and
        ``loss_instance``.

        Args:
            inputs (list[Tensor]): The ``2 + 2K`` views (see
                :meth:`split_views`).
            data_samples (list[DataSample]): With ``univip_boxes``
                ``[K, 4]``, the instance boxes in the order of the instance
                views (checked against ``K``).

        Returns:
            dict[str, Tensor]: The weighted loss terms.
        """
        scenes, instances = self.split_views(inputs)
        for sample in data_samples or ():
            boxes = sample.get('univip_boxes')
            if boxes is not None and len(boxes) != self.head.num_instances:
                raise ValueError(
                    f'a sample carries {len(boxes)} instance boxes, the head '
                    f'expects {self.head.num_instances}')
        online = self._online()
        online_scene = [self._embed(online, x) for x in scenes]
        # One instance set per image (the paper's O and T): online on the
        # instances cut with view 1's augmentations, target on view 2's.
        online_instances = (None if instances is None else self._embed(
            online, instances[0]))
        with torch.no_grad():
            target_scene = [self._embed(self.target_net, x) for x in scenes]
            target_instances = (
                self._embed(self.target_net, instances[1])
                if self.head.loss_weights['instance'] else None)
        return self.head.loss(online_scene, target_scene, online_instances,
                              target_instances)
