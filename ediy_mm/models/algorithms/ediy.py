from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..heads.ediy_head import EDIYFeatures, EDIYHead
from ..utils.momentum_target import MomentumTargetMixin
from .teacher import FrozenTeacher

__all__ = [
    'EDIY', 'REGION_GRIDS', 'REGION_SOURCES', 'check_region_grids',
    'check_two_views'
]

#: Values of ``EDIY(region_source=...)``: who chooses the regions.
REGION_SOURCES = ('teacher', 'target', 'random')

#: Values of ``EDIY(region_grid=...)``: what to do when the teacher's map
#: has another grid than the online map (``None``: refuse).
REGION_GRIDS = (None, 'interpolate', 'pool')


def check_region_grids(teacher: Sequence[int], online: Sequence[int],
                       region_grid: Optional[str]) -> None:
    """Raise a clear error unless ``region_grid`` reconciles the teacher's
    grid with the online grid.

    Args:
        teacher (tuple[int]): ``(H, W)`` of the teacher's last map.
        online (tuple[int]): ``(H, W)`` of the online backbone's last map.
        region_grid (str, optional): ``EDIY.region_grid``.

    Raises:
        ValueError: Naming both grids and the options.
    """
    teacher, online = tuple(teacher), tuple(online)
    if teacher == online or region_grid == 'interpolate':
        return
    if region_grid == 'pool':
        if all(o % t == 0 for t, o in zip(teacher, online)):
            return
        raise ValueError(
            f"model.region_grid='pool' averages the online {online} grid "
            f'down to the teacher {teacher} grid in blocks of whole cells, '
            'so each side of the online grid must be a multiple of the '
            "teacher's (a finer teacher, or overlapping unequal blocks "
            "otherwise); use model.region_grid='interpolate' or a teacher "
            'of the online stride.')
    raise ValueError(
        f'the teacher map is a {teacher} grid but the online map is a '
        f'{online} grid: E-DIY matches regions cell by cell. Choose one: '
        "model.region_grid='interpolate' (the teacher map is resized to "
        "the online grid), model.region_grid='pool' (the online and target "
        'maps are average-pooled to the teacher grid before the local '
        'projector), or a teacher with the online output stride (e.g. a '
        'ResNet with strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2) for a '
        'ViT/16); README, "Backbones".')


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
class EDIY(MomentumTargetMixin, BaseSelfSupervisor):
    """E-DIY: Exploring the Diversity and Invariance in Yourself.

    Implementation of `Exploring the Diversity and Invariance in Yourself
    for Visual Pre-Training Task <https://arxiv.org/abs/2106.00537>`_: BYOL
    plus R-DEM (push each region away from its most different region in the
    same view, eq. 4-5) and R-IEM (pull each region towards its most similar
    region of the other view, eq. 6-7), the regions being chosen by a frozen
    teacher.

    The momentum target is a :class:`MomentumTarget` (a ``CosineEMA``) of
    backbone and neck, moved once per optimizer step
    (:class:`MomentumTargetMixin`; no hook needed), whatever
    ``optim_wrapper.accumulative_counts``. The
    online backbone sees the two views one at a time (BN statistics per
    view, as BYOL). Only the projectors that the head's enabled terms use
    are built and run (see :class:`EDIYHead`).

    Args:
        backbone (dict): Online backbone config.
        neck (dict): :class:`EDIYNeck` config (``with_global`` and
            ``with_local`` are set from the head).
        head (dict): :class:`EDIYHead` config (predictors, λ, R-INS).
        region_source (str): Who chooses the regions of eq. 4 and eq. 6:

            - ``'teacher'`` (the paper): a frozen pre-trained backbone,
              :class:`FrozenTeacher` built from ``teacher``, run on the
              same two views in one pass under ``torch.inference_mode()``;
            - ``'target'`` (ours, not in the paper, "teacher-free"): the
              momentum target's own last backbone maps (no extra model, no
              extra forward pass);
            - ``'random'``: uniformly at random (Table 1, rows "R").

            Defaults to ``'teacher'``. Unused (and no teacher is built)
            when no enabled term matches regions.
        region_grid (str, optional): When the teacher's map has another
            grid than the online one (a ResNet-50 teacher is 7x7 at 224 px,
            a ViT/16 14x14): ``'interpolate'`` resizes the teacher's map
            bilinearly to the online grid (the regions are the online
            cells); ``'pool'`` average-pools the online and target maps to
            the teacher's grid before the local projector (the regions are
            the teacher's cells, each a block of whole online cells: every
            online side must be a multiple of the teacher's). ``None``
            (default) refuses different grids with an error naming both
            (:func:`check_region_grids`). Equal grids are used as they are
            whatever the value.
        teacher (dict, optional): :class:`FrozenTeacher` arguments
            (``checkpoint``, ``backbone``, ``prefix``, ``dtype``,
            ``channels_last``); needed when ``region_source='teacher'``.
        base_momentum (float): Target momentum ``1 - τ_base`` (τ_base =
            0.996 in BYOL and E-DIY), cosine-annealed to 0 over the
            optimizer steps. Defaults to 0.004.
        pretrained (str, optional): Checkpoint for the whole model.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 region_source: str = 'teacher',
                 teacher: Optional[dict] = None,
                 region_grid: Optional[str] = None,
                 base_momentum: float = 0.004,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        head = MODELS.build(head)
        if not isinstance(head, EDIYHead):
            raise TypeError(f'EDIY needs an EDIYHead, got {type(head)}')
        neck = dict(
            neck,
            with_global=head.uses_online_global,
            with_local=head.uses_online_local)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.region_source = region_source
        if region_grid not in REGION_GRIDS:
            raise ValueError(f'model.region_grid must be one of '
                             f'{REGION_GRIDS}, got {region_grid!r}')
        self.region_grid = region_grid
        self.teacher = self._build_teacher(region_source, teacher)
        self.build_momentum_target(base_momentum)

    def _build_teacher(self, region_source: str,
                       cfg: Optional[dict]) -> Optional[FrozenTeacher]:
        """Validate ``region_source`` / ``teacher`` and build the teacher."""
        if region_source not in REGION_SOURCES:
            raise ValueError(f'model.region_source must be one of '
                             f'{REGION_SOURCES}, got {region_source!r}')
        if cfg is not None and 'source' in cfg:
            raise ValueError(
                'model.teacher.source was replaced by model.region_source '
                "('teacher', 'target' or 'random'); model.teacher now only "
                'holds the FrozenTeacher arguments (checkpoint, backbone, '
                'prefix, dtype, channels_last)')
        if not self.head.matches_regions:
            if region_source == 'teacher' and cfg is not None:
                print_log(
                    'model.teacher is not built: no enabled loss term '
                    'matches regions.',
                    logger='current')
            return None
        if region_source != 'teacher':
            if cfg is not None:
                print_log(
                    f'model.teacher is not built: region_source='
                    f'{region_source!r} chooses the regions.',
                    logger='current')
            return None
        if cfg is None:
            raise ValueError(
                "region_source='teacher' (the paper) needs model.teacher="
                'dict(checkpoint=<pre-trained backbone>, backbone=...); or '
                "set model.region_source='target' (teacher-free) or "
                "'random'.")
        return FrozenTeacher(**cfg)

    def init_weights(self) -> None:
        """Initialise the online networks, copy them into the target, then
        load the teacher."""
        super().init_weights()
        if self.teacher is not None:
            self.teacher.load_checkpoint()

    def check_views(self, inputs: List[torch.Tensor]) -> None:
        """Raise a clear error unless ``inputs`` are the views this
        algorithm trains on (two, of the same shape); ``TeacherHook``
        calls it on a training sample before the first iteration."""
        check_two_views(inputs)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Compute ``loss_byol``, ``loss_rdem`` and ``loss_riem`` (eq. 3).

        Args:
            inputs (list[Tensor]): The two views, ``[B, 3, H, W]`` each.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: The weighted loss terms.
        """
        self.check_views(inputs)
        return self.head.loss(self.features(inputs))

    def features(self, inputs: List[torch.Tensor]) -> EDIYFeatures:
        """The features of the two views that the head's enabled terms
        use: online projections, target projections (no gradient) and the
        maps that choose the regions.

        Args:
            inputs (list[Tensor]): The two views, ``[B, 3, H, W]`` each.

        Returns:
            EDIYFeatures: The bundle :meth:`EDIYHead.loss` takes.
        """
        head = self.head
        with torch.no_grad():
            teacher_maps = self._teacher_maps(inputs)
        # region_grid='pool': the local projections live on the teacher grid
        local_grid = None
        if teacher_maps is not None and self.region_grid == 'pool':
            local_grid = teacher_maps[0].shape[-2:]
        online_maps, online_global, online_local = [], [], []
        for img in inputs:
            feats = self.backbone(img)
            if local_grid is not None:  # before the neck pools the map
                check_region_grids(local_grid, feats[-1].shape[-2:],
                                   self.region_grid)
            glob, local = self.neck(
                feats,
                with_global=head.uses_online_global,
                with_local=head.uses_online_local,
                local_grid=local_grid)
            online_maps.append(feats[-1])
            online_global.append(glob)
            online_local.append(local)
        with torch.no_grad():
            target = self._target_features(inputs, local_grid)
            target_maps = target.pop('maps')
            region_maps = teacher_maps if teacher_maps is not None else (
                target_maps if self._regions_from('target') else None)
            if region_maps is not None:
                region_maps = self._on_local_grid(region_maps, online_maps[0])
        return EDIYFeatures(
            online_global=_pair(online_global),
            online_local=_pair(online_local),
            region_maps=region_maps,
            **target)

    def _regions_from(self, source: str) -> bool:
        """Whether the maps of ``source`` choose the regions."""
        return self.head.matches_regions and self.region_source == source

    def _teacher_maps(self, inputs: List[torch.Tensor]) -> Optional[tuple]:
        """The frozen teacher's maps of both views, when they choose the
        regions."""
        if not self._regions_from('teacher'):
            return None
        return tuple(self.teacher(torch.cat(inputs)).chunk(2))

    def _target_features(self,
                         inputs: List[torch.Tensor],
                         local_grid: Optional[Sequence[int]] = None) -> dict:
        """The target's global / local projections (the local ones on
        ``local_grid``) and last backbone maps of both views, each ``None``
        when unused."""
        head = self.head
        with_neck = head.uses_target_global or head.uses_target_local
        run = with_neck or self._regions_from('target')
        out = dict(target_global=None, target_local=None, maps=None)
        if not run:
            return out
        backbone, neck = self.target_net.module
        feats = [backbone(img) for img in inputs]
        out['maps'] = _pair([f[-1] for f in feats])
        if with_neck:
            glob, local = zip(*(neck(
                f,
                with_global=head.uses_target_global,
                with_local=head.uses_target_local,
                local_grid=local_grid) for f in feats))
            out['target_global'], out['target_local'] = _pair(glob), _pair(
                local)
        return out

    def _on_local_grid(self, maps: Tuple[torch.Tensor, ...],
                       online_map: torch.Tensor) -> tuple:
        """The region-choosing maps on the grid of the local projections:
        checked against the online map, resized by
        ``region_grid='interpolate'``."""
        grid, online = maps[0].shape[-2:], online_map.shape[-2:]
        check_region_grids(grid, online, self.region_grid)
        if grid != online and self.region_grid == 'interpolate':
            return tuple(
                F.interpolate(
                    m.float(),
                    size=online,
                    mode='bilinear',
                    align_corners=False) for m in maps)
        return tuple(maps)


def _pair(items: Sequence[Optional[torch.Tensor]]) -> Optional[tuple]:
    """``tuple(items)``, or ``None`` when the items are ``None``."""
    return None if items[0] is None else tuple(items)
