"""Functional losses of UniVIP (Li et al., "UniVIP: A Unified Framework for
Self-Supervised Visual Pre-training", CVPR 2022, arXiv 2203.06965), one
function per printed equation (the numbering of
``../shared/papers/univip_figures/README.md`` and ``docs/univip.md``):

- eq. 1, :func:`pair_loss`: ``L(x1, x2) = -cos(f(x1), g(x2))``;
- eq. 2, :func:`scene_loss`: ``L_scene = L(s1, s2) + L(s2, s1)``;
- eqs. 3-5, :func:`scene_instance_loss`: ``I = f_linear(concat(o_1..o_K))``
  and ``L_scene-instance = L_affinity(s1, I) + L_affinity(s2, I)`` with
  ``L_affinity(s, I) = -cos(I, g(s))``;
- eq. 6, :func:`instance_cost`: ``c_mn = 1 - cos(o_m, t_n)``;
- eq. 7, :func:`instance_marginals`: ``b_m = max{o_m^T (f_t1 + f_t2) / 2,
  0}``, ``a_n = max{t_n^T (f_o1 + f_o2) / 2, 0}`` (normalised);
- eq. 8, :func:`instance_loss`: ``L_instance(O, T) = -sum_mn cos(o_m, t_n)
  y_mn`` with the plan ``y`` of :func:`sinkhorn`;
- eq. 9 (``L_scene + L_scene-instance + L_instance``) is the sum of
  :class:`~ediy_mm.models.heads.UniVIPHead`'s terms.

The losses are at the printed scale (``-cos``, not BYOL's ``2 - 2 cos``).
Embeddings are ``[B, D]`` (one per image) or ``[B, K, D]`` (``K`` instances
per image, in the order of their boxes). Cosine similarities, the
marginals and the transport plan are computed in float32 with autocast off;
every loss returns a 0-dim tensor averaged over the batch.
"""
import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'instance_cost', 'instance_loss', 'instance_marginals', 'pair_loss',
    'round_plan', 'scene_instance_loss', 'scene_loss', 'sinkhorn'
]


@contextlib.contextmanager
def _float32(x: Tensor) -> Iterator[None]:
    """No autocast: similarities are computed in float32."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


@contextlib.contextmanager
def _float32_no_grad(x: Tensor) -> Iterator[None]:
    """No autograd, no autocast: the plan is computed in float32."""
    with torch.no_grad(), _float32(x):
        yield


def _unit(x: Tensor) -> Tensor:
    """L2-normalise the last dimension in float32."""
    return F.normalize(x.float(), dim=-1)


def sinkhorn(cost: Tensor,
             row_marginal: Tensor,
             col_marginal: Tensor,
             eps: float = 0.1,
             num_iters: int = 50) -> Tensor:
    r"""Entropic optimal transport plan by Sinkhorn-Knopp in the log domain,
    the plan ``y`` of UniVIP's eq. 8.

    UniVIP does not print ε or the number of iterations. The defaults, ε =
    0.1 and 50 iterations, are OTA's (Ge et al., "OTA: Optimal Transport
    Assignment for Object Detection", CVPR 2021: its released configs set
    ``SINKHORN_EPS=0.1`` and ``SINKHORN_ITER=50``), taken for want of
    UniVIP's own.

    Solves, per batch element,

    .. math::

        \pi^\star = \arg\min_{\pi \ge 0,\ \pi 1 = a,\ \pi^\top 1 = b}
        \langle \pi, C \rangle - \varepsilon H(\pi)

    with the potentials ``u = log a - logsumexp(v - C / ε)`` (rows) and
    ``v = log b - logsumexp(u - C / ε)`` (columns), starting from ``v = 0``.
    The log domain keeps it finite in float32 for small ε (0.01 is tested):
    the kernel ``exp(-C / ε)`` is never formed. After ``num_iters`` row +
    column updates the iterate ``exp(u + v - C / ε)`` meets the column
    marginals but not yet the row ones (Sinkhorn converges slowly when the
    masses are very uneven, as UniVIP's clipped similarities make them). The
    last step is **ours, not UniVIP's**: the iterate is rounded onto the
    plans with both marginals (:func:`round_plan`: Altschuler, Weed and
    Rigollet, NeurIPS 2017, Algorithm 2), so the plan meets both marginals
    to float precision.

    Zero masses are allowed (eq. 7 clips its products at 0): their
    potentials are ``-inf`` and their rows / columns of the plan are 0.

    The plan is a constant of the loss (UniVIP does not back-propagate
    through it): it is computed under ``torch.no_grad()``, in float32 with
    autocast off, and returned detached.

    Args:
        cost (Tensor): Cost matrices ``[B, M, N]``.
        row_marginal (Tensor): ``a``, ``[B, M]``, non-negative, each row
            summing to a positive total mass (1 for probability marginals).
        col_marginal (Tensor): ``b``, ``[B, N]``, non-negative, with the
            same total mass as ``a``.
        eps (float): Entropic regularisation ε > 0. Defaults to 0.1
            (OTA's).
        num_iters (int): Row + column updates, at least 1. Defaults to 50
            (OTA's).

    Returns:
        Tensor: The plan ``[B, M, N]`` (float32, no gradient).
    """
    if cost.dim() != 3:
        raise ValueError(f'cost must be [B, M, N], got {tuple(cost.shape)}')
    batch, rows, cols = cost.shape
    if row_marginal.shape != (batch, rows) or col_marginal.shape != (batch,
                                                                     cols):
        raise ValueError(
            f'marginals must be [B, M] = {(batch, rows)} and [B, N] = '
            f'{(batch, cols)} for a cost {tuple(cost.shape)}, got '
            f'{tuple(row_marginal.shape)} and {tuple(col_marginal.shape)}')
    if not eps > 0:
        raise ValueError(f'eps must be > 0, got {eps}')
    if int(num_iters) != num_iters or num_iters < 1:
        raise ValueError(f'num_iters must be an integer >= 1, got {num_iters}')
    with _float32_no_grad(cost):
        a, b = row_marginal.detach().float(), col_marginal.detach().float()
        mass_a, mass_b = a.sum(1), b.sum(1)
        valid = bool((a >= 0).all()) and bool((b >= 0).all())
        if not (valid and bool((mass_a > 0).all())):
            raise ValueError('sinkhorn needs non-negative marginals with a '
                             'positive total mass per problem')
        if not torch.allclose(mass_a, mass_b, rtol=1e-4, atol=0):
            raise ValueError('the two marginals must carry the same mass, got '
                             f'{mass_a.tolist()} and {mass_b.tolist()}')
        scaled = -cost.detach().float() / eps
        log_a, log_b = a.log(), b.log()
        v = torch.zeros_like(log_b)
        for _ in range(int(num_iters)):
            u = log_a - torch.logsumexp(scaled + v.unsqueeze(1), dim=2)
            v = log_b - torch.logsumexp(scaled + u.unsqueeze(2), dim=1)
        return round_plan(
            torch.exp(scaled + u.unsqueeze(2) + v.unsqueeze(1)), a, b)


def round_plan(plan: Tensor, row_marginal: Tensor,
               col_marginal: Tensor) -> Tensor:
    """The plan with marginals ``a`` and ``b`` nearest to a Sinkhorn
    iterate (Altschuler, Weed and Rigollet, NeurIPS 2017, Algorithm 2).

    Rows are scaled down to at most ``a``, then columns to at most ``b``;
    the mass still missing, ``err_a = a - P 1`` and ``err_b = b - P^T 1``,
    is added as ``err_a err_b^T / |err_a|_1``. Exact when ``a`` and ``b``
    carry the same mass; the change is at most twice the marginal error of
    the iterate in L1. Rows and columns of zero mass stay 0. This step is
    ours: UniVIP uses the Sinkhorn plan without saying how it is finished.

    Args:
        plan (Tensor): Non-negative ``[B, M, N]``.
        row_marginal (Tensor): ``a``, ``[B, M]``.
        col_marginal (Tensor): ``b``, ``[B, N]``, of the same mass.

    Returns:
        Tensor: ``[B, M, N]``.
    """
    tiny = torch.finfo(plan.dtype).tiny
    plan = plan * (row_marginal /
                   plan.sum(2).clamp(min=tiny)).clamp(max=1).unsqueeze(2)
    plan = plan * (col_marginal /
                   plan.sum(1).clamp(min=tiny)).clamp(max=1).unsqueeze(1)
    err_a = (row_marginal - plan.sum(2)).clamp(min=0)
    err_b = (col_marginal - plan.sum(1)).clamp(min=0)
    missing = err_a.sum(1).clamp(min=tiny)
    return plan + err_a.unsqueeze(2) * err_b.unsqueeze(1) / missing.view(
        -1, 1, 1)


def pair_loss(online: Tensor, target: Tensor) -> Tensor:
    """UniVIP's eq. 1, ``L(x1, x2) = -<f(x1), g(x2)> / (|f(x1)| |g(x2)|)``:
    the negative cosine of an online embedding and a target one (the target
    detached), averaged over the batch. Eq. 4, ``L_affinity(s, I)``, is the
    same function of the fused instances ``I`` and the target scene.

    Args:
        online (Tensor): Online embeddings ``f(x1)``, ``[B, D]``.
        target (Tensor): Target embeddings ``g(x2)``, ``[B, D]``.

    Returns:
        Tensor: 0-dim loss in ``[-1, 1]``.
    """
    with _float32(online):
        return -(_unit(online) * _unit(target.detach())).sum(-1).mean()


def scene_loss(online_1: Tensor, online_2: Tensor, target_1: Tensor,
               target_2: Tensor) -> Tensor:
    """UniVIP's eq. 2, scene-scene: ``L_scene = L(s1, s2) + L(s2, s1)``
    with ``L`` of eq. 1 (:func:`pair_loss`).

    Args:
        online_1 (Tensor): Online embedding of scene 1, ``[B, D]``.
        online_2 (Tensor): Online embedding of scene 2, ``[B, D]``.
        target_1 (Tensor): Target embedding of scene 1, ``[B, D]``.
        target_2 (Tensor): Target embedding of scene 2, ``[B, D]``.

    Returns:
        Tensor: 0-dim loss in ``[-2, 2]``.
    """
    return pair_loss(online_1, target_2) + pair_loss(online_2, target_1)


def scene_instance_loss(instances: Tensor, target_1: Tensor, target_2: Tensor,
                        weight: Tensor, bias: Tensor) -> Tensor:
    """UniVIP's eqs. 3-5, scene-instance: the ``K`` online instance
    embeddings, concatenated in box order and projected by a linear layer,
    ``I = f_linear(concat(o_1, ..., o_K))`` (eq. 3), are pulled to the
    target embeddings of both scenes: ``L_affinity(s1, I) +
    L_affinity(s2, I)`` (eq. 5) with ``L_affinity(s, I) = -cos(I, g(s))``
    (eq. 4, :func:`pair_loss`).

    Args:
        instances (Tensor): Online instance embeddings ``O``, ``[B, K, D]``.
        target_1 (Tensor): Target embedding of scene 1, ``[B, D']``.
        target_2 (Tensor): Target embedding of scene 2, ``[B, D']``.
        weight (Tensor): The linear layer's weight ``[D', K * D]``.
        bias (Tensor): Its bias ``[D']``.

    Returns:
        Tensor: 0-dim loss in ``[-2, 2]``.
    """
    if instances.dim() != 3:
        raise ValueError('instances must be [B, K, D], got '
                         f'{tuple(instances.shape)}')
    if weight.size(1) != instances.size(1) * instances.size(2):
        raise ValueError(
            f'the linear layer takes {weight.size(1)} inputs but K x D = '
            f'{instances.size(1)} x {instances.size(2)}: build it with '
            'in_features = num_instances x embedding size')
    fused = F.linear(instances.flatten(1), weight, bias)
    return pair_loss(fused, target_1) + pair_loss(fused, target_2)


def instance_cost(online: Tensor, target: Tensor) -> Tensor:
    """UniVIP's eq. 6: cosine similarities and the transport cost
    ``c_mn = 1 - cos(o_m, t_n)`` between online and target instance
    embeddings.

    Args:
        online (Tensor): Online instance embeddings ``o_m``, ``[B, M, D]``.
        target (Tensor): Target instance embeddings ``t_n``, ``[B, N, D]``.

    Returns:
        tuple[Tensor, Tensor]: ``cos(o_m, t_n)`` ``[B, M, N]`` (float32, with
        the gradient of ``online`` and ``target``) and the cost
        ``1 - cos`` (the same, detached).
    """
    with _float32(online):
        cos = torch.bmm(_unit(online), _unit(target).transpose(1, 2))
    return cos, 1 - cos.detach()


def instance_marginals(instances: Tensor, scenes: Sequence[Tensor]) -> Tensor:
    r"""UniVIP's eq. 7, the transport marginals: each instance's clipped
    **dot product** with the other branch's mean scene embedding,
    ``b_m = max{o_m^T (f_t1 + f_t2) / 2, 0}`` (online instances against the
    target scenes) and ``a_n = max{t_n^T (f_o1 + f_o2) / 2, 0}`` (target
    instances against the online scenes), normalised to sum to 1 over the
    ``K`` instances of each image.

    The paper writes the norms out in eqs. 1, 4, 6 and 8 and not here, so
    this is a dot product of the raw embeddings, as in DeepEMD's
    cross-reference weights that it follows: an instance's norm weighs in
    (the scene's norm, common to the ``K`` instances, is removed by the
    normalisation). The paper does not say how the marginals are scaled;
    Sinkhorn needs the two sides to carry the same mass, so each is
    normalised to 1 (the plan then sums to 1 and eq. 8 lies in [-1, 1]).
    An image whose ``K`` products are all <= 0 has no mass to normalise:
    its marginal is uniform, ``1 / K`` (the only case the formula leaves
    undefined). No gradient: the marginals only shape the plan.

    Args:
        instances (Tensor): Instance embeddings of one branch,
            ``[B, K, D]``.
        scenes (Sequence[Tensor]): The other branch's two scene embeddings
            ``f_1, f_2``, ``[B, D]`` each.

    Returns:
        Tensor: ``[B, K]`` (float32), each row non-negative and summing to 1.
    """
    if len(scenes) != 2:
        raise ValueError(f'eq. 7 takes the two scene embeddings of a branch, '
                         f'got {len(scenes)}')
    with _float32_no_grad(instances):
        mean = (scenes[0].float() + scenes[1].float()) / 2
        weights = torch.einsum('bkd,bd->bk', instances.float(),
                               mean).clamp(min=0)
        total = weights.sum(1, keepdim=True)
        uniform = torch.full_like(weights, 1 / weights.size(1))
        return torch.where(
            total > 0,
            weights / total.clamp(min=torch.finfo(total.dtype).tiny), uniform)


def instance_loss(online: Tensor,
                  target: Tensor,
                  online_scenes: Sequence[Tensor],
                  target_scenes: Sequence[Tensor],
                  eps: float = 0.1,
                  num_iters: int = 50) -> Tensor:
    r"""UniVIP's eq. 8, instance-instance discrimination by optimal
    transport: ``L_instance(O, T) = -\sum_m \sum_n cos(o_m, t_n) y_mn``.

    The plan ``y`` is :func:`sinkhorn` on the cost of eq. 6
    (:func:`instance_cost`) with the marginals of eq. 7
    (:func:`instance_marginals`): ``b_m`` of the online instances against
    the target scenes (rows), ``a_n`` of the target instances against the
    online scenes (columns). It carries no gradient, and neither do the
    target embeddings. In ``[-1, 1]`` per image (``y`` sums to 1).

    Args:
        online (Tensor): Online instance embeddings ``O``, ``[B, K, D]``.
        target (Tensor): Target instance embeddings ``T``, ``[B, K, D]``.
        online_scenes (Sequence[Tensor]): The online embeddings of the two
            scenes, ``[B, D]`` each.
        target_scenes (Sequence[Tensor]): The target embeddings of the two
            scenes, ``[B, D]`` each.
        eps (float): Sinkhorn's ε. Defaults to 0.1 (OTA's).
        num_iters (int): Sinkhorn's iterations. Defaults to 50 (OTA's).

    Returns:
        Tensor: 0-dim loss.
    """
    target = target.detach()
    cos, cost = instance_cost(online, target)
    plan = sinkhorn(cost, instance_marginals(online, target_scenes),
                    instance_marginals(target, online_scenes), eps, num_iters)
    return -(cos * plan).sum((1, 2)).mean()
