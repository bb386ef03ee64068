"""Functional losses of E-DIY (arXiv 2106.00537, Sec. 3.1-3.2).

Feature maps are ``[B, C, H, W]``. Region ``j`` of a map is cell ``j`` of its
flattened ``H * W`` grid in row-major order (``x.flatten(2)``), so a map has
``n = H * W`` regions. Every loss returns a 0-dim tensor: the mean over the
batch of the per-image loss of the paper. Cosine similarities are computed in
float32, so the losses behave the same under fp16 / bf16 autocast.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'byol_loss', 'match_regions', 'random_regions', 'random_partners',
    'matched_cosine', 'rdem_loss', 'riem_loss', 'rdem_instance_loss'
]

_MOST = ('similar', 'different')


def _unit(x: Tensor, dim: int = 1) -> Tensor:
    """L2-normalise ``x`` along ``dim`` in float32."""
    return F.normalize(x.float(), dim=dim)


def _unit_regions(x: Tensor) -> Tensor:
    """Unit-norm region features ``[B, D, H * W]`` (float32) of a map
    ``[B, D, H, W]``."""
    return _unit(x.flatten(2))


def byol_loss(pred_1: Tensor, pred_2: Tensor, target_1: Tensor,
              target_2: Tensor) -> Tensor:
    """Symmetric BYOL loss, eq. 2.

    ``4 - 2 * cos(pred_1, target_2) - 2 * cos(pred_2, target_1)`` per image,
    averaged over the batch. The targets come from the momentum (target)
    network and are detached (stop-gradient).

    Args:
        pred_1 (Tensor): Online prediction ``q(f(x†))`` of view 1,
            ``[B, D]``.
        pred_2 (Tensor): Online prediction ``q(f(x‡))`` of view 2,
            ``[B, D]``.
        target_1 (Tensor): Target projection ``g(x†)`` of view 1, ``[B, D]``.
        target_2 (Tensor): Target projection ``g(x‡)`` of view 2, ``[B, D]``.

    Returns:
        Tensor: 0-dim loss in ``[0, 8]``.
    """
    cos_12 = (_unit(pred_1) * _unit(target_2.detach())).sum(1)
    cos_21 = (_unit(pred_2) * _unit(target_1.detach())).sum(1)
    return (4 - 2 * cos_12 - 2 * cos_21).mean()


def match_regions(query: Tensor, key: Tensor,
                  most: str = 'similar') -> Tensor:
    """Teacher-guided region matching, eq. 4 (``'different'``) and eq. 6
    (``'similar'``).

    For each region ``j`` of ``query`` returns
    ``argmax_z cos(key_z, query_j)`` (``most='similar'``) or
    ``argmin_z cos(key_z, query_j)`` (``most='different'``). The similarities
    are computed in float32 with autocast disabled, so bf16 / fp16 autocast
    cannot change the choice; ties go to the lowest index. No gradient.

    Args:
        query (Tensor): Teacher map of the query view, ``[B, D, Hq, Wq]``.
        key (Tensor): Teacher map searched for the match, ``[B, D, Hk, Wk]``
            (the same tensor as ``query`` for eq. 4).
        most (str): ``'similar'`` or ``'different'``.

    Returns:
        Tensor: LongTensor ``[B, Hq * Wq]`` of region indices of ``key``, in
        ``[0, Hk * Wk)``.
    """
    if most not in _MOST:
        raise ValueError(f'most must be one of {_MOST}, got {most!r}')
    with torch.no_grad(), torch.autocast(
            device_type=query.device.type, enabled=False):
        sim = torch.bmm(
            _unit_regions(query).transpose(1, 2), _unit_regions(key))
        if most == 'similar':
            return sim.argmax(dim=2)
        return sim.argmin(dim=2)


def random_regions(num_query: int,
                   num_key: int,
                   batch_size: int,
                   exclude_self: bool = False,
                   device: Optional[torch.device] = None,
                   generator: Optional[torch.Generator] = None) -> Tensor:
    """Random region matching, the "R" ablation of Table 1.

    Replaces the teacher-guided choice of :func:`match_regions` by a uniform
    draw. With ``exclude_self=True`` (for R-DEM, where query and key are the
    same map) region ``j`` is matched uniformly to one of the other
    ``n - 1`` regions, never to itself.

    Args:
        num_query (int): Number of query regions ``Hq * Wq``.
        num_key (int): Number of key regions ``Hk * Wk``.
        batch_size (int): Batch size ``B``.
        exclude_self (bool): Never match a region to itself. Needs
            ``num_query == num_key >= 2``. Defaults to False.
        device (torch.device, optional): Device of the result.
        generator (torch.Generator, optional): Random generator (on
            ``device``).

    Returns:
        Tensor: LongTensor ``[B, num_query]`` of indices in
        ``[0, num_key)``.
    """
    if not exclude_self:
        return torch.randint(
            num_key, (batch_size, num_query),
            device=device,
            generator=generator)
    if num_query != num_key or num_key < 2:
        raise ValueError('exclude_self needs num_query == num_key >= 2, got '
                         f'num_query={num_query}, num_key={num_key}')
    offset = torch.randint(
        num_key - 1, (batch_size, num_key), device=device, generator=generator)
    own = torch.arange(num_key, device=offset.device)
    return (own + 1 + offset) % num_key


def random_partners(batch_size: int,
                    device: Optional[torch.device] = None,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """For each image of the batch, a uniformly random *other* image, for
    the R-INS ablation (:func:`rdem_instance_loss`).

    Args:
        batch_size (int): Batch size ``B``, at least 2.
        device (torch.device, optional): Device of the result.
        generator (torch.Generator, optional): Random generator (on
            ``device``).

    Returns:
        Tensor: LongTensor ``[B]`` with ``partner[b] != b``.
    """
    if batch_size < 2:
        raise ValueError('random_partners needs at least 2 images per batch '
                         f'to pick another image, got batch_size={batch_size}')
    offset = torch.randint(
        batch_size - 1, (batch_size, ), device=device, generator=generator)
    own = torch.arange(batch_size, device=offset.device)
    return (own + 1 + offset) % batch_size


def matched_cosine(x: Tensor, y: Tensor, index: Tensor) -> Tensor:
    """Cosine similarity of each region of ``x`` with its matched region of
    ``y``: ``cos(x[b, :, j], y[b, :, index[b, j]])``.

    The summands of eq. 5 and eq. 7. Computed in float32.

    Args:
        x (Tensor): Map ``[B, D, Hx, Wx]``.
        y (Tensor): Map ``[B, D, Hy, Wy]``.
        index (Tensor): LongTensor ``[B, Hx * Wx]`` of region indices of
            ``y``.

    Returns:
        Tensor: ``[B, Hx * Wx]`` cosine similarities (float32).
    """
    x = _unit_regions(x)
    y = _unit_regions(y)
    if index.shape != (x.size(0), x.size(2)):
        raise ValueError(f'index must have shape {(x.size(0), x.size(2))} '
                         f'[B, Hx * Wx], got {tuple(index.shape)}')
    index = index.unsqueeze(1).expand(-1, y.size(1), -1)
    return (x * torch.gather(y, 2, index)).sum(1)


def _resolve_index(teacher_q: Optional[Tensor], teacher_k: Optional[Tensor],
                   index: Optional[Tensor], most: str, view: int) -> Tensor:
    """The region match of ``view``: ``index`` if given, else computed from
    the teacher maps with :func:`match_regions`."""
    if (teacher_q is None) == (index is None):
        raise ValueError(f'give exactly one of teacher_{view} (teacher map) '
                         f'or index_{view} (precomputed region indices)')
    if index is None:
        return match_regions(teacher_q, teacher_k, most)
    return index


def rdem_loss(local_1: Tensor,
              local_2: Tensor,
              teacher_1: Optional[Tensor] = None,
              teacher_2: Optional[Tensor] = None,
              index_1: Optional[Tensor] = None,
              index_2: Optional[Tensor] = None) -> Tensor:
    """Region-level Diversity Exploring Module loss (R-DEM), eq. 5 with the
    matching of eq. 4.

    Per view ``v``: ``(1/n) sum_j cos(local_v[j], local_v[R^D_v(j)])`` with
    ``R^D_v(j) = argmin_z cos(teacher_v[z], teacher_v[j])``; summed over the
    two views and averaged over the batch. Minimising it pushes the most
    different regions of each view apart; both sides are the online local
    projection, and the gradient flows into both.

    Args:
        local_1 (Tensor): Online local projection ``f^l(x†)``,
            ``[B, D, H1, W1]``.
        local_2 (Tensor): Online local projection ``f^l(x‡)``,
            ``[B, D, H2, W2]``.
        teacher_1 (Tensor, optional): Teacher map ``T(x†)``,
            ``[B, Dt, H1, W1]``. Give it or ``index_1``.
        teacher_2 (Tensor, optional): Teacher map ``T(x‡)``,
            ``[B, Dt, H2, W2]``. Give it or ``index_2``.
        index_1 (Tensor, optional): Precomputed ``R^D`` of view 1,
            LongTensor ``[B, H1 * W1]`` (e.g. from :func:`random_regions`
            with ``exclude_self=True``).
        index_2 (Tensor, optional): Precomputed ``R^D`` of view 2,
            LongTensor ``[B, H2 * W2]``.

    Returns:
        Tensor: 0-dim loss in ``[-2, 2]``.
    """
    index_1 = _resolve_index(teacher_1, teacher_1, index_1, 'different', 1)
    index_2 = _resolve_index(teacher_2, teacher_2, index_2, 'different', 2)
    loss = (
        matched_cosine(local_1, local_1, index_1).mean(1) +
        matched_cosine(local_2, local_2, index_2).mean(1))
    return loss.mean()


def riem_loss(online_1: Tensor,
              online_2: Tensor,
              target_1: Tensor,
              target_2: Tensor,
              teacher_1: Optional[Tensor] = None,
              teacher_2: Optional[Tensor] = None,
              index_1: Optional[Tensor] = None,
              index_2: Optional[Tensor] = None) -> Tensor:
    """Region-level Invariance Exploring Module loss (R-IEM), eq. 7 with the
    matching of eq. 6.

    ``2 - (1/n1) sum_j cos(online_1[j], target_2[R^S_1(j)])
    - (1/n2) sum_j cos(online_2[j], target_1[R^S_2(j)])`` per image,
    averaged over the batch, with
    ``R^S_1(j) = argmax_z cos(teacher_2[z], teacher_1[j])`` and ``R^S_2``
    the converse. The targets come from the momentum (target) network and
    are detached (stop-gradient).

    Args:
        online_1 (Tensor): Online local projection ``f^l(x†)``,
            ``[B, D, H1, W1]``.
        online_2 (Tensor): Online local projection ``f^l(x‡)``,
            ``[B, D, H2, W2]``.
        target_1 (Tensor): Target local projection ``g^l(x†)``,
            ``[B, D, H1, W1]``.
        target_2 (Tensor): Target local projection ``g^l(x‡)``,
            ``[B, D, H2, W2]``.
        teacher_1 (Tensor, optional): Teacher map ``T(x†)``,
            ``[B, Dt, H1, W1]``. Give the teacher maps or ``index_1`` and
            ``index_2``.
        teacher_2 (Tensor, optional): Teacher map ``T(x‡)``,
            ``[B, Dt, H2, W2]``.
        index_1 (Tensor, optional): Precomputed ``R^S_1``, the match of view-1
            regions into view 2, i.e.
            ``match_regions(teacher_1, teacher_2, 'similar')``, LongTensor
            ``[B, H1 * W1]`` with values in ``[0, H2 * W2)``.
        index_2 (Tensor, optional): Precomputed ``R^S_2``, the match of view-2
            regions into view 1, LongTensor ``[B, H2 * W2]``.

    Returns:
        Tensor: 0-dim loss in ``[0, 4]``.
    """
    index_1 = _resolve_index(teacher_1, teacher_2, index_1, 'similar', 1)
    index_2 = _resolve_index(teacher_2, teacher_1, index_2, 'similar', 2)
    loss = (2 - matched_cosine(online_1, target_2.detach(), index_1).mean(1) -
            matched_cosine(online_2, target_1.detach(), index_2).mean(1))
    return loss.mean()


def rdem_instance_loss(local_1: Tensor, local_2: Tensor, global_1: Tensor,
                       global_2: Tensor, partner: Tensor) -> Tensor:
    """R-DEM with instance negatives, the "R-INS" ablation of Table 1 (as in
    DenseCL).

    Instead of a region of the same image, every region ``j`` of image ``b``
    in view ``v`` is pushed away from the global embedding of another image:
    ``(1/n) sum_j cos(local_v[b, :, j], global_v[partner[b]])``, summed over
    the two views and averaged over the batch. The global embeddings are used
    as given (detach them to use them as constant negatives).

    Args:
        local_1 (Tensor): Online local projection of view 1,
            ``[B, D, H1, W1]``.
        local_2 (Tensor): Online local projection of view 2,
            ``[B, D, H2, W2]``.
        global_1 (Tensor): Global embedding of view 1, ``[B, D]``.
        global_2 (Tensor): Global embedding of view 2, ``[B, D]``.
        partner (Tensor): LongTensor ``[B]``, the other image of each image
            (see :func:`random_partners`).

    Returns:
        Tensor: 0-dim loss in ``[-2, 2]``.
    """
    loss = sum(
        (_unit_regions(local) *
         _unit(glob[partner]).unsqueeze(2)).sum(1).mean(1)
        for local, glob in ((local_1, global_1), (local_2, global_2)))
    return loss.mean()
