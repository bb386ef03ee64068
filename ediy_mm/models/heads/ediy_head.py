from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..losses.ediy_losses import (byol_loss, random_partners, random_regions,
                                  rdem_instance_loss_unit, rdem_loss_unit,
                                  riem_loss_unit, teacher_matches,
                                  unit_regions)
from ..necks.ediy_neck import project_regions

__all__ = ['EDIYHead']

Pair = Tuple[torch.Tensor, torch.Tensor]


@MODELS.register_module()
class EDIYHead(BaseModule):
    """Predictors and losses of E-DIY, eq. 3.

    ``L = λ1·L_R-DEM + λ2·L_R-IEM + λ3·L_BYOL``; each term is returned
    already multiplied by its weight, under ``loss_rdem``, ``loss_riem`` and
    ``loss_byol``. A term whose weight is 0 is neither computed nor returned,
    and the algorithm skips the features only it needs.

    The global predictor is BYOL's. R-IEM (eq. 7) compares the online *local
    projector* output with the target's local projector output, as the
    paper writes it (``f^l`` against ``g^l``): by default there is no local
    predictor. ``local_predictor`` adds one on the online side of R-IEM only
    (R-DEM keeps ``f^l`` on both sides, as eq. 5 writes it).

    Args:
        predictor (dict): Config of the global predictor (a
            ``NonLinearNeck`` without pooling, as in BYOL).
        local_predictor (dict, optional): Config of an optional predictor
            applied to every online region before R-IEM. Defaults to None.
        lambda_rdem (float): λ1, weight of R-DEM (eq. 5). Defaults to 1.
        lambda_riem (float): λ2, weight of R-IEM (eq. 7). Defaults to 1.
        lambda_byol (float): λ3, weight of BYOL (eq. 2). Defaults to 1.
        region_choice (str): ``'teacher'`` (eq. 4 and 6, the paper's TG) or
            ``'random'`` (Table 1, row "R"). Defaults to ``'teacher'``.
        rdem_negative (str): ``'region'`` (eq. 5) or ``'instance'`` (Table 1,
            row "R-INS": the global embedding of another image of the batch,
            as in DenseCL). Defaults to ``'region'``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 predictor: dict,
                 local_predictor: Optional[dict] = None,
                 lambda_rdem: float = 1.,
                 lambda_riem: float = 1.,
                 lambda_byol: float = 1.,
                 region_choice: str = 'teacher',
                 rdem_negative: str = 'region',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if region_choice not in ('teacher', 'random'):
            raise ValueError("region_choice must be 'teacher' or 'random', "
                             f'got {region_choice!r}')
        if rdem_negative not in ('region', 'instance'):
            raise ValueError("rdem_negative must be 'region' or 'instance', "
                             f'got {rdem_negative!r}')
        for name, value in (('lambda_rdem', lambda_rdem),
                            ('lambda_riem', lambda_riem), ('lambda_byol',
                                                           lambda_byol)):
            if value < 0:
                raise ValueError(f'{name} must be >= 0, got {value}')
        if lambda_rdem == lambda_riem == lambda_byol == 0:
            raise ValueError('all loss weights are 0: nothing to train')
        self.lambda_rdem = lambda_rdem
        self.lambda_riem = lambda_riem
        self.lambda_byol = lambda_byol
        self.region_choice = region_choice
        self.rdem_negative = rdem_negative
        self.predictor = MODELS.build(predictor)
        self.local_predictor = (
            MODELS.build(local_predictor) if local_predictor else None)

    @property
    def needs_online_local(self) -> bool:
        """Whether a region loss is on (the local projector must run)."""
        return self.lambda_rdem > 0 or self.lambda_riem > 0

    @property
    def needs_target_local(self) -> bool:
        """Whether R-IEM is on (the target's local projector must run)."""
        return self.lambda_riem > 0

    @property
    def needs_guide(self) -> bool:
        """Whether region matching needs teacher maps (eq. 4 / eq. 6)."""
        if self.region_choice != 'teacher':
            return False
        return self.lambda_riem > 0 or (self.lambda_rdem > 0 and
                                        self.rdem_negative == 'region')

    def loss(self,
             online_global: Pair,
             target_global: Pair,
             online_local: Optional[Pair] = None,
             target_local: Optional[Pair] = None,
             guide: Optional[Pair] = None) -> Dict[str, torch.Tensor]:
        """Compute the weighted loss terms.

        Args:
            online_global (tuple[Tensor]): Online global embeddings of the
                two views, ``[B, D]`` each.
            target_global (tuple[Tensor]): Target global embeddings.
            online_local (tuple[Tensor], optional): Online local maps
                ``[B, D, H, W]``; needed when a region loss is on.
            target_local (tuple[Tensor], optional): Target local maps;
                needed by R-IEM.
            guide (tuple[Tensor], optional): Teacher maps ``[B, C, H, W]``
                that choose the regions; needed when ``needs_guide``.

        Returns:
            dict[str, Tensor]: ``loss_byol``, ``loss_rdem``, ``loss_riem``
            (only the terms whose weight is non-zero).
        """
        losses = {}
        if self.lambda_byol > 0:
            pred_1, pred_2 = (self.predictor((x, ))[0] for x in online_global)
            losses['loss_byol'] = self.lambda_byol * byol_loss(
                pred_1, pred_2, *target_global)
        losses.update(
            self.region_losses(online_global, online_local, target_local,
                               guide))
        return losses

    def region_losses(self,
                      online_global: Pair,
                      online_local: Optional[Pair] = None,
                      target_local: Optional[Pair] = None,
                      guide: Optional[Pair] = None) -> Dict[str, torch.Tensor]:
        """The weighted region terms ``loss_rdem`` and ``loss_riem`` of
        :meth:`loss` (region matching included).

        The same values as ``rdem_loss`` and ``riem_loss`` of
        :mod:`ediy_mm.models.losses`, with every map normalised once and
        shared by the two terms: the teacher maps once for the four
        matches of eq. 4 and eq. 6, the online local maps once for R-DEM and
        R-IEM.

        Args:
            online_global (tuple[Tensor]): Online global embeddings (used
                by the R-INS ablation only).
            online_local (tuple[Tensor], optional): Online local maps.
            target_local (tuple[Tensor], optional): Target local maps.
            guide (tuple[Tensor], optional): Teacher maps.

        Returns:
            dict[str, Tensor]: ``loss_rdem`` and ``loss_riem`` (the terms
            whose weight is non-zero).
        """
        losses = {}
        if not self.needs_online_local:
            return losses
        rdem = self.lambda_rdem > 0
        riem = self.lambda_riem > 0
        matches = {}
        if self.region_choice == 'teacher' and self.needs_guide:
            matches = teacher_matches(
                *guide,
                different=rdem and self.rdem_negative == 'region',
                similar=riem)
        unit_local = tuple(unit_regions(x) for x in online_local)
        if rdem:
            losses['loss_rdem'] = self.lambda_rdem * self._rdem(
                online_global, unit_local, matches)
        if riem:
            if self.local_predictor is not None:
                unit_online = tuple(
                    unit_regions(project_regions(self.local_predictor, x))
                    for x in online_local)
            else:
                unit_online = unit_local
            unit_target = tuple(unit_regions(x.detach()) for x in target_local)
            losses['loss_riem'] = self.lambda_riem * self._riem(
                unit_online, unit_target, matches)
        return losses

    def _rdem(self, online_global: Pair, unit_local: Pair,
              matches: Dict[str, torch.Tensor]) -> torch.Tensor:
        """R-DEM with the configured negative and region choice, on unit
        region features ``[B, D, n]``."""
        unit_1, unit_2 = unit_local
        if self.rdem_negative == 'instance':
            partner = random_partners(unit_1.size(0), device=unit_1.device)
            return rdem_instance_loss_unit(unit_1, unit_2, *online_global,
                                           partner)
        if self.region_choice == 'teacher':
            return rdem_loss_unit(unit_1, unit_2, matches['rdem_1'],
                                  matches['rdem_2'])
        b, n = unit_1.size(0), unit_1.size(2)
        index_1, index_2 = (
            random_regions(n, n, b, exclude_self=True, device=unit_1.device)
            for _ in range(2))
        return rdem_loss_unit(unit_1, unit_2, index_1, index_2)

    def _riem(self, unit_online: Pair, unit_target: Pair,
              matches: Dict[str, torch.Tensor]) -> torch.Tensor:
        """R-IEM with the configured region choice, on unit region features
        ``[B, D, n]`` (the local predictor already applied)."""
        if self.region_choice == 'teacher':
            return riem_loss_unit(*unit_online, *unit_target,
                                  matches['riem_1'], matches['riem_2'])
        b, n = unit_online[0].size(0), unit_online[0].size(2)
        index_1, index_2 = (
            random_regions(n, n, b, device=unit_online[0].device)
            for _ in range(2))
        return riem_loss_unit(*unit_online, *unit_target, index_1, index_2)
