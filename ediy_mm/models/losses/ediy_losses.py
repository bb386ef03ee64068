"""Functional losses of E-DIY (arXiv 2106.00537, Sec. 3.1-3.2).

Feature maps are ``[B, C, H, W]``. Region ``j`` of a map is cell ``j`` of its
flattened ``H * W`` grid in row-major order (``x.flatten(2)``), so a map has
``n = H * W`` regions. Every loss returns a 0-dim tensor: the mean over the
batch of the per-image loss of the paper. Cosine similarities are computed in
float32, so the losses behave the same under fp16 / bf16 autocast.
"""
import contextlib
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'byol_loss', 'match_regions', 'random_regions', 'random_partners',
    'matched_cosine', 'rdem_loss', 'riem_loss', 'rdem_instance_loss',
    'teacher_matches', 'unit_regions', 'rdem_loss_unit', 'riem_loss_unit',
    'rdem_instance_loss_unit'
]

_MOST = ('similar', 'different')


def _unit(x: Tensor, dim: int = 1) -> Tensor:
    """L2-normalise ``x`` along ``dim`` in float32."""
    return F.normalize(x.float(), dim=dim)


def _unit_regions(x: Tensor) -> Tensor:
    """Unit-norm region features ``[B, D, H * W]`` (float32) of a map
    ``[B, D, H, W]``."""
    return _unit(x.flatten(2))


#: Public name of :func:`_unit_regions`, the input of the ``*_unit``
#: losses.
unit_regions = _unit_regions


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
            (the same tensor as ``query`` for eq. 4; it is then normalised
            once).
        most (str): ``'similar'`` or ``'different'``.

    Returns:
        Tensor: LongTensor ``[B, Hq * Wq]`` of region indices of ``key``, in
        ``[0, Hk * Wk)``.
    """
    if most not in _MOST:
        raise ValueError(f'most must be one of {_MOST}, got {most!r}')
    with _matching_context(query):
        unit_query = _unit_regions(query)
        unit_key = unit_query if key is query else _unit_regions(key)
        return _match_unit(unit_query, unit_key, most)


@contextlib.contextmanager
def _matching_context(x: Tensor) -> Iterator[None]:
    """No autograd and no autocast: regions are matched in float32."""
    with torch.no_grad(), torch.autocast(
            device_type=x.device.type, enabled=False):
        yield


def _match_unit(unit_query: Tensor, unit_key: Tensor, most: str) -> Tensor:
    """Eq. 4 / eq. 6 on unit region features ``[B, D, n]`` (one bmm, one
    argmax / argmin)."""
    sim = torch.bmm(unit_query.transpose(1, 2), unit_key)
    if most == 'similar':
        return sim.argmax(dim=2)
    return sim.argmin(dim=2)


def teacher_matches(teacher_1: Tensor,
                    teacher_2: Tensor,
                    different: bool = True,
                    similar: bool = True) -> Dict[str, Optional[Tensor]]:
    """All the region matches of E-DIY from the two teacher maps, each map
    normalised once.

    Equal to :func:`match_regions` called four times (same kernels, same
    results), without normalising the same map again for every call.

    Args:
        teacher_1 (Tensor): Teacher map of view 1, ``[B, D, H1, W1]``.
        teacher_2 (Tensor): Teacher map of view 2, ``[B, D, H2, W2]``.
        different (bool): Compute ``R^D`` of both views (eq. 4, R-DEM).
        similar (bool): Compute ``R^S`` of both views (eq. 6, R-IEM).

    Returns:
        dict[str, Tensor | None]: ``rdem_1 = match_regions(teacher_1,
        teacher_1, 'different')``, ``rdem_2`` (view 2), ``riem_1 =
        match_regions(teacher_1, teacher_2, 'similar')`` and ``riem_2 =
        match_regions(teacher_2, teacher_1, 'similar')``; ``None`` for
        those not asked for.
    """
    out = dict(rdem_1=None, rdem_2=None, riem_1=None, riem_2=None)
    if not (different or similar):
        return out
    with _matching_context(teacher_1):
        unit_1 = _unit_regions(teacher_1)
        unit_2 = _unit_regions(teacher_2)
        if different:
            out['rdem_1'] = _match_unit(unit_1, unit_1, 'different')
            out['rdem_2'] = _match_unit(unit_2, unit_2, 'different')
        if similar:
            out['riem_1'] = _match_unit(unit_1, unit_2, 'similar')
            out['riem_2'] = _match_unit(unit_2, unit_1, 'similar')
    return out


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

    The summands of eq. 5 and eq. 7. Computed in float32. When ``y`` is
    ``x`` (eq. 5) the map is normalised once.

    Args:
        x (Tensor): Map ``[B, D, Hx, Wx]``.
        y (Tensor): Map ``[B, D, Hy, Wy]``.
        index (Tensor): LongTensor ``[B, Hx * Wx]`` of region indices of
            ``y``.

    Returns:
        Tensor: ``[B, Hx * Wx]`` cosine similarities (float32).
    """
    unit_x = _unit_regions(x)
    unit_y = unit_x if y is x else _unit_regions(y)
    return _matched_cosine_unit(unit_x, unit_y, index)


def _matched_cosine_unit(unit_x: Tensor, unit_y: Tensor,
                         index: Tensor) -> Tensor:
    """:func:`matched_cosine` on unit region features ``[B, D, n]``."""
    if index.shape != (unit_x.size(0), unit_x.size(2)):
        raise ValueError(
            f'index must have shape {(unit_x.size(0), unit_x.size(2))} '
            f'[B, Hx * Wx], got {tuple(index.shape)}')
    index = index.unsqueeze(1).expand(-1, unit_y.size(1), -1)
    return (unit_x * torch.gather(unit_y, 2, index)).sum(1)


def _check_match_args(teacher_1: Optional[Tensor],
                      teacher_2: Optional[Tensor], index_1: Optional[Tensor],
                      index_2: Optional[Tensor]) -> None:
    """Exactly one of teacher map or precomputed index per view."""
    for view, teacher, index in ((1, teacher_1, index_1),
                                 (2, teacher_2, index_2)):
        if (teacher is None) == (index is None):
            raise ValueError(
                f'give exactly one of teacher_{view} (teacher map) or '
                f'index_{view} (precomputed region indices)')


def _unit_pair(x_1: Tensor, x_2: Tensor) -> Tuple[Tensor, Tensor]:
    """Unit region features of two maps, normalised once if the same."""
    unit_1 = _unit_regions(x_1)
    return unit_1, unit_1 if x_2 is x_1 else _unit_regions(x_2)


def rdem_loss_unit(unit_1: Tensor, unit_2: Tensor, index_1: Tensor,
                   index_2: Tensor) -> Tensor:
    """:func:`rdem_loss` on unit region features ``[B, D, n]`` (from
    ``F.normalize(local.flatten(2).float(), dim=1)``) and given matches."""
    loss = (
        _matched_cosine_unit(unit_1, unit_1, index_1).mean(1) +
        _matched_cosine_unit(unit_2, unit_2, index_2).mean(1))
    return loss.mean()


def riem_loss_unit(online_1: Tensor, online_2: Tensor, target_1: Tensor,
                   target_2: Tensor, index_1: Tensor,
                   index_2: Tensor) -> Tensor:
    """:func:`riem_loss` on unit region features ``[B, D, n]`` and given
    matches; the targets must already be detached."""
    loss = (2 - _matched_cosine_unit(online_1, target_2, index_1).mean(1) -
            _matched_cosine_unit(online_2, target_1, index_2).mean(1))
    return loss.mean()


def rdem_instance_loss_unit(unit_1: Tensor, unit_2: Tensor, global_1: Tensor,
                            global_2: Tensor, partner: Tensor) -> Tensor:
    """:func:`rdem_instance_loss` on unit region features ``[B, D, n]``."""
    loss = sum((unit * _unit(glob[partner]).unsqueeze(2)).sum(1).mean(1)
               for unit, glob in ((unit_1, global_1), (unit_2, global_2)))
    return loss.mean()


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
    _check_match_args(teacher_1, teacher_2, index_1, index_2)
    if index_1 is None:
        index_1 = match_regions(teacher_1, teacher_1, 'different')
    if index_2 is None:
        index_2 = match_regions(teacher_2, teacher_2, 'different')
    return rdem_loss_unit(*_unit_pair(local_1, local_2), index_1, index_2)


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
    _check_match_args(teacher_1, teacher_2, index_1, index_2)
    if index_1 is None and index_2 is None:
        matches = teacher_matches(teacher_1, teacher_2, different=False)
        index_1, index_2 = matches['riem_1'], matches['riem_2']
    elif index_1 is None or index_2 is None:
        raise ValueError('R-IEM matches each view into the other: give '
                         'both teacher maps or both indices')
    same = target_2 is target_1
    target_1 = target_1.detach()
    target_2 = target_1 if same else target_2.detach()
    return riem_loss_unit(*_unit_pair(online_1, online_2),
                          *_unit_pair(target_1, target_2), index_1, index_2)


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
    return rdem_instance_loss_unit(*_unit_pair(local_1, local_2), global_1,
                                   global_2, partner)
