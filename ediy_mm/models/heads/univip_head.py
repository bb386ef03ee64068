"""UniVIP's predictor, scene-instance linear layer and its three losses."""
from typing import Dict, Optional, Sequence

from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..losses import instance_loss, scene_instance_loss, scene_loss

__all__ = ['UniVIPHead']

#: The loss terms of UniVIP (eq. 9), all weighted 1 in the paper.
LOSS_TERMS = ('scene', 'scene_instance', 'instance')


@MODELS.register_module()
class UniVIPHead(BaseModule):
    """The predictor, the scene-instance linear layer and the losses of
    UniVIP (arXiv 2203.06965), as the paper prints them (eq. 9:
    ``L_scene + L_scene-instance + L_instance``).

    From the online and target embeddings of the two scenes and of the
    image's ``K`` instances (one set, as in the paper: ``O`` online, ``T``
    target), it returns

    - ``loss_scene``: eq. 2, :func:`~ediy_mm.models.losses.scene_loss` of
      the predicted online scenes against the target scenes;
    - ``loss_scene_instance``: eqs. 3-5,
      :func:`~ediy_mm.models.losses.scene_instance_loss` of the predicted
      online instances ``O``, fused by :attr:`fuse` (a linear layer
      ``K * D -> D``), against both target scenes;
    - ``loss_instance``: eqs. 6-8, :func:`~ediy_mm.models.losses.
      instance_loss`, optimal transport between ``O`` and the target
      instances ``T`` (Sinkhorn with OTA's ε = 0.1 and 50 iterations by
      default: the paper gives none);

    each times its weight. The "online embeddings" of the paper are the
    predictions ``q(g(f(x)))`` here, the target ones the projections
    ``g'(f'(x))``, as in BYOL. A weight of 0 builds neither the term nor
    the modules only it uses.

    Args:
        predictor (dict): Online predictor config (a ``NonLinearNeck``
            without pooling, ``D -> D``).
        num_instances (int): ``K``. Defaults to 4.
        embed_dim (int): ``D``, the projection size. Defaults to 256.
        loss_weights (dict, optional): Weights of ``scene``,
            ``scene_instance`` and ``instance``. Defaults to 1 each.
        sinkhorn_eps (float): Sinkhorn's ε. Defaults to 0.1 (OTA's).
        sinkhorn_iters (int): Sinkhorn's iterations. Defaults to 50 (OTA's).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 predictor: dict,
                 num_instances: int = 4,
                 embed_dim: int = 256,
                 loss_weights: Optional[Dict[str, float]] = None,
                 sinkhorn_eps: float = 0.1,
                 sinkhorn_iters: int = 50,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        weights = dict.fromkeys(LOSS_TERMS, 1.)
        unknown = set(loss_weights or {}) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f'unknown loss_weights {sorted(unknown)}; the '
                             f'terms are {LOSS_TERMS}')
        weights.update(loss_weights or {})
        if any(w < 0 for w in weights.values()) or not any(weights.values()):
            raise ValueError('loss_weights must be >= 0 and not all 0, got '
                             f'{weights}')
        if not sinkhorn_eps > 0 or sinkhorn_iters < 1:
            raise ValueError('sinkhorn_eps must be > 0 and sinkhorn_iters '
                             f'>= 1, got {sinkhorn_eps} and {sinkhorn_iters}')
        self.loss_weights = weights
        self.num_instances = num_instances
        self.sinkhorn_eps = sinkhorn_eps
        self.sinkhorn_iters = sinkhorn_iters
        self.predictor = MODELS.build(predictor)
        self.fuse = (
            nn.Linear(num_instances * embed_dim, embed_dim)
            if weights['scene_instance'] > 0 else None)

    @property
    def uses_instances(self) -> bool:
        """Whether a loss term needs the instance views."""
        return bool(self.loss_weights['scene_instance']
                    or self.loss_weights['instance'])

    def _predict(self, projection: Tensor) -> Tensor:
        """The predictor on ``[..., D]`` projections."""
        flat = projection.flatten(0, -2)
        return self.predictor([flat])[0].view(*projection.shape[:-1], -1)

    def loss(self,
             online_scene: Sequence[Tensor],
             target_scene: Sequence[Tensor],
             online_instances: Optional[Tensor] = None,
             target_instances: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The weighted loss terms.

        Args:
            online_scene (Sequence[Tensor]): Online projections of the two
                scenes, ``[B, D]`` each.
            target_scene (Sequence[Tensor]): Target projections of the two
                scenes, ``[B, D]`` each.
            online_instances (Tensor, optional): Online projections of the
                ``K`` instances, ``[B, K, D]`` (needed when
                :attr:`uses_instances`).
            target_instances (Tensor, optional): Target projections of the
                same instances, ``[B, K, D]`` (needed by the instance term).

        Returns:
            dict[str, Tensor]: ``loss_scene``, ``loss_scene_instance`` and
            ``loss_instance``, those of weight > 0.
        """
        weights, losses = self.loss_weights, {}
        scene = [self._predict(z) for z in online_scene]
        target_scene = [t.detach() for t in target_scene]
        if weights['scene']:
            losses['loss_scene'] = weights['scene'] * scene_loss(
                *scene, *target_scene)
        if not self.uses_instances:
            return losses
        if online_instances is None or online_instances.size(
                1) != self.num_instances:
            raise ValueError(
                f'the head was built for {self.num_instances} instances per '
                'image, got ' + ('none' if online_instances is
                                 None else str(online_instances.size(1))))
        instances = self._predict(online_instances)
        if weights['scene_instance']:
            losses['loss_scene_instance'] = weights[
                'scene_instance'] * scene_instance_loss(
                    instances, *target_scene, self.fuse.weight, self.fuse.bias)
        if weights['instance']:
            losses['loss_instance'] = weights['instance'] * instance_loss(
                instances, target_instances, scene, target_scene,
                self.sinkhorn_eps, self.sinkhorn_iters)
        return losses
