from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmpretrain.models import BaseSelfSupervisor, CosineEMA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from .teacher import FrozenTeacher

__all__ = ['EDIY', 'check_two_views']


def check_two_views(inputs: Sequence[torch.Tensor]) -> None:
    """Raise a clear error unless ``inputs`` holds two same-shaped views.

    Args:
        inputs (list[Tensor]): The views of a batch, ``[B, 3, H, W]`` each.

    Raises:
        ValueError: With the number of views (or shapes) found.
    """
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        found = (f'{len(inputs)} view(s)' if isinstance(inputs, (list, tuple))
                 else f'a single {type(inputs).__name__}')
        raise ValueError(
            f'E-DIY needs exactly 2 augmented views per image, got {found}. '
            "Use dict(type='MultiView', num_views=[1, 1], transforms=["
            'view_pipeline1, view_pipeline2]) in the train pipeline.')
    if inputs[0].shape != inputs[1].shape:
        raise ValueError('the two views must have the same shape, got '
                         f'{tuple(inputs[0].shape)} and '
                         f'{tuple(inputs[1].shape)}')


@MODELS.register_module()
class EDIY(BaseSelfSupervisor):
    """E-DIY: Exploring the Diversity and Invariance in Yourself.

    Implementation of `Exploring the Diversity and Invariance in Yourself
    for Visual Pre-Training Task <https://arxiv.org/abs/2106.00537>`_: BYOL
    plus R-DEM (push each region away from its most different region in the
    same view, eq. 4-5) and R-IEM (pull each region towards its most similar
    region of the other view, eq. 6-7), the regions being chosen by a frozen
    teacher.

    The momentum target is a :class:`CosineEMA` of backbone and neck, as in
    mmpretrain's BYOL; the online backbone sees the two views one at a time
    (BN statistics per view, as BYOL).

    Args:
        backbone (dict): Online backbone config.
        neck (dict): :class:`EDIYNeck` config.
        head (dict): :class:`EDIYHead` config (predictors, λ, ablations).
        teacher (dict, optional): Which maps choose the regions:

            - ``dict(source='checkpoint', checkpoint=..., backbone=...,
              prefix=..., dtype=None, channels_last=False)``: the paper's
              frozen pre-trained teacher (:class:`FrozenTeacher`), run on
              the same two views in one pass under
              ``torch.inference_mode()``; ``dtype`` and ``channels_last``
              set its precision and memory format independently of the
              online network (see :class:`FrozenTeacher`).
            - ``dict(source='target')``: ours, not in the paper: the
              momentum target's own last backbone maps choose the regions
              (no extra model, no extra forward pass).
            - ``None``: no teacher; only valid when the head needs none
              (BYOL only, random region choice, or R-INS without R-IEM).
        base_momentum (float): CosineEMA momentum, i.e. ``1 - τ_base``
            (τ_base = 0.996 in BYOL and E-DIY). Defaults to 0.004.
        pretrained (str, optional): Checkpoint for the whole model.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 teacher: Optional[dict] = None,
                 base_momentum: float = 0.004,
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
        self.teacher_source, self.teacher = self._build_teacher(teacher)
        self.target_net = CosineEMA(
            nn.Sequential(self.backbone, self.neck), momentum=base_momentum)

    def _build_teacher(
            self, cfg: Optional[dict]) -> Tuple[str, Optional[FrozenTeacher]]:
        """Validate the teacher config against the head and build it."""
        cfg = dict(cfg or {})
        source = cfg.pop('source', 'checkpoint' if cfg else None)
        if source not in (None, 'checkpoint', 'target'):
            raise ValueError("model.teacher.source must be 'checkpoint' or "
                             f"'target', got {source!r}")
        if not self.head.needs_guide:
            if source is not None:
                print_log(
                    f'model.teacher ({source}) is not used: no loss term '
                    'chooses regions with it; it is not built.',
                    logger='current')
            return None, None
        if source is None:
            raise ValueError(
                'R-DEM/R-IEM with region_choice="teacher" need maps that '
                'choose the regions, but model.teacher is None. Set '
                "model.teacher=dict(source='checkpoint', checkpoint=...) "
                "(the paper), dict(source='target') (teacher-free), or "
                "head.region_choice='random'.")
        if source == 'target':
            if cfg:
                raise ValueError("teacher=dict(source='target') takes no "
                                 f'other option, got {sorted(cfg)}')
            return 'target', None
        if 'checkpoint' not in cfg:
            raise ValueError("teacher=dict(source='checkpoint') needs "
                             'checkpoint=<path of a pre-trained backbone>')
        return 'checkpoint', FrozenTeacher(**cfg)

    def init_weights(self) -> None:
        """Initialise the online networks, then load the teacher."""
        super().init_weights()
        if self.teacher is not None:
            self.teacher.load_checkpoint()

    def _guide_maps(self, img_1: torch.Tensor,
                    img_2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The frozen teacher's last maps of both views (one pass)."""
        maps = self.teacher(torch.cat([img_1, img_2]))
        return maps.chunk(2)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Compute ``loss_byol``, ``loss_rdem`` and ``loss_riem`` (eq. 3).

        Args:
            inputs (list[Tensor]): The two views, ``[B, 3, H, W]`` each.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: The weighted loss terms.
        """
        check_two_views(inputs)
        head = self.head
        with_local = head.needs_online_local
        online_global, online_local, online_maps = [], [], []
        for img in inputs:
            feats = self.backbone(img)
            glob, local = self.neck(feats, with_local=with_local)
            online_global.append(glob)
            online_local.append(local)
            online_maps.append(feats[-1])

        with torch.no_grad():
            self.target_net.update_parameters(
                nn.Sequential(self.backbone, self.neck))
            target_backbone, target_neck = self.target_net.module
            target_global, target_local, target_maps = [], [], []
            for img in inputs:
                feats = target_backbone(img)
                glob, local = target_neck(
                    feats, with_local=head.needs_target_local)
                target_global.append(glob)
                target_local.append(local)
                target_maps.append(feats[-1])

            guide = None
            if self.teacher_source == 'checkpoint':
                guide = self._guide_maps(*inputs)
            elif self.teacher_source == 'target':
                guide = tuple(target_maps)
            if guide is not None and guide[0].shape[-2:] != online_maps[
                    0].shape[-2:]:
                raise ValueError(
                    f'the teacher map is {tuple(guide[0].shape[-2:])} but '
                    f'the online map is {tuple(online_maps[0].shape[-2:])}: '
                    'regions must correspond cell by cell; use a teacher '
                    'backbone with the same output stride.')

        return head.loss(
            tuple(online_global),
            tuple(target_global),
            tuple(online_local) if with_local else None,
            tuple(target_local) if head.needs_target_local else None,
            guide)
