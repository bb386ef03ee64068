"""LARC over SGD, as NVIDIA apex's ``apex.parallel.LARC`` wraps
``torch.optim.SGD`` (the optimiser of MosRep's released linear probe)."""
from typing import Callable, Iterable, List, Optional, Union

import torch
from mmpretrain.registry import OPTIMIZERS
from torch import Tensor

__all__ = ['LARC', 'larc_gradient']


def larc_gradient(param: Tensor, grad: Tensor, lr: float, weight_decay: float,
                  trust_coefficient: float, eps: float, clip: bool) -> Tensor:
    r"""The gradient LARC hands to SGD for one parameter (You, Gitman and
    Ginsburg, "Large Batch Training of Convolutional Networks", arXiv
    1708.03888, in NVIDIA apex's ``LARC.step``).

    With ``|p|`` and ``|g|`` the L2 norms of the whole parameter and of its
    gradient, when both are non-zero:

    .. math::

        \lambda = \eta \frac{|p|}{|g| + wd |p| + \epsilon},\quad
        \lambda \leftarrow \min(\lambda / lr, 1)\ \text{(clip only)},\quad
        g \leftarrow \lambda (g + wd\, p).

    The SGD step then multiplies by ``lr`` (and its momentum): without
    clipping the parameter's rate is ``lr * λ``, with it ``min(lr, λ)``.
    When either norm is 0 (e.g. a zero-initialised bias at the first step)
    apex leaves the gradient as it is, weight decay included, and so does
    this function.

    Args:
        param (Tensor): The parameter.
        grad (Tensor): Its gradient (not modified).
        lr (float): The group's learning rate (used only by ``clip``).
        weight_decay (float): The group's weight decay.
        trust_coefficient (float): ``η``.
        eps (float): ``ε``, added to the denominator.
        clip (bool): Clip the rate at ``lr`` instead of scaling it.

    Returns:
        Tensor: The new gradient.
    """
    param_norm = torch.linalg.vector_norm(param)
    grad_norm = torch.linalg.vector_norm(grad)
    rate = trust_coefficient * param_norm / (
        grad_norm + param_norm * weight_decay + eps)
    if clip:
        rate = (rate / lr).clamp(max=1)
    scaled = (grad + weight_decay * param) * rate
    return torch.where((param_norm != 0) & (grad_norm != 0), scaled, grad)


def _sgd_step_without_hooks(optimizer: torch.optim.SGD) -> None:
    """SGD's own step, without the optimizer step hooks.

    Once any ``SGD`` has been built, torch wraps ``SGD.step`` in the code
    that calls the global and per-optimizer step hooks (``hooked``); the
    wrapped ``LARC.step`` calls them already, so through ``super().step()``
    every hook (a momentum target's, a profiler's) would run twice per
    step.
    """
    step = torch.optim.SGD.step
    if getattr(step, 'hooked', False):
        step = step.__wrapped__
    step(optimizer)


@OPTIMIZERS.register_module()
class LARC(torch.optim.SGD):
    """SGD whose gradients are first rescaled layer by layer by LARC
    (:func:`larc_gradient`): the same updates as NVIDIA apex's
    ``LARC(torch.optim.SGD(...), trust_coefficient, clip, eps)``, which
    MosRep's ``linear_prob.py`` builds (``utils/lars.py``: trust 0.001,
    ``clip=False``).

    apex's LARC is a wrapper that takes the weight decay out of SGD (adds
    ``wd * p`` to the gradient itself before scaling it) and steps the
    wrapped SGD with weight decay 0. Here the wrapper and SGD are one
    optimiser, so mmengine builds it from a config (``type='LARC'``), its
    parameter schedulers set the learning rate of its groups, and its state
    is SGD's (momentum buffers), saved and resumed as usual.

    mmpretrain's ``LARS`` differs: it folds the learning rate into the
    momentum buffer (so a rate change acts on new gradients only, where
    SGD's acts on the whole buffer), has no ``clip`` and excludes groups by
    ``lars_exclude``; it is not an exact substitute.

    Args:
        params (Iterable): Parameters or parameter groups.
        lr (float): Learning rate.
        momentum (float): SGD momentum. Defaults to 0.
        dampening (float): SGD dampening. Defaults to 0.
        weight_decay (float): Weight decay, applied by LARC before the
            scaling (not by SGD). Defaults to 0.
        nesterov (bool): Nesterov momentum. Defaults to False.
        trust_coefficient (float): LARC's ``η``. Defaults to 0.02 (apex's).
        clip (bool): Clipping (``min(lr, λ)``) rather than scaling
            (``lr * λ``) mode. Defaults to True (apex's).
        eps (float): LARC's ``ε``. Defaults to 1e-8 (apex's).
    """

    def __init__(self,
                 params: Union[Iterable[Tensor], Iterable[dict]],
                 lr: float,
                 momentum: float = 0.,
                 dampening: float = 0.,
                 weight_decay: float = 0.,
                 nesterov: bool = False,
                 trust_coefficient: float = 0.02,
                 clip: bool = True,
                 eps: float = 1e-8) -> None:
        if not trust_coefficient > 0:
            raise ValueError(
                f'trust_coefficient must be > 0, got {trust_coefficient}')
        if not eps >= 0:
            raise ValueError(f'eps must be >= 0, got {eps}')
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov)
        self.trust_coefficient = trust_coefficient
        self.clip = clip
        self.eps = eps

    @torch.no_grad()
    def step(self,
             closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """Rescale every gradient (:func:`larc_gradient`), then take SGD's
        step with weight decay 0.

        Args:
            closure (Callable, optional): Re-evaluates the model and returns
                the loss.

        Returns:
            float, optional: The closure's loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        decays: List[float] = []
        for group in self.param_groups:
            decays.append(group['weight_decay'])
            for param in group['params']:
                if param.grad is not None:
                    param.grad.copy_(
                        larc_gradient(param, param.grad, group['lr'],
                                      group['weight_decay'],
                                      self.trust_coefficient, self.eps,
                                      self.clip))
            group['weight_decay'] = 0.
        try:
            _sgd_step_without_hooks(self)
        finally:
            for group, decay in zip(self.param_groups, decays):
                group['weight_decay'] = decay
        return loss
