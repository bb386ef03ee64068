"""The momentum target network of BYOL-style and MoCo-style methods, moved
once per optimizer step."""
import logging
import math
import sys
import weakref
from typing import Optional

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmpretrain.models import CosineEMA
from mmpretrain.registry import MODELS
from torch import nn
from torch.optim import Optimizer
from torch.optim.optimizer import register_optimizer_step_post_hook

__all__ = [
    'MomentumTarget', 'MomentumTargetMixin', 'optimizer_step_progress',
    'stepping_optim_wrapper'
]


@MODELS.register_module()
class MomentumTarget(CosineEMA):
    r"""A :class:`CosineEMA` target moved once per optimizer step.

    After optimizer step :math:`k` of :math:`K` every target parameter
    becomes

    .. math::

        \xi \leftarrow (1 - m_k)\,\xi + m_k\,\theta, \qquad
        m_k = m_{end} - (m_{end} - m_{base})\,\frac{\cos(\pi k / K) + 1}{2}

    (BYOL, arXiv 2006.07733, Sec. 3.2, with :math:`m = 1 - \tau`;
    ``end_momentum == momentum`` gives MoCo's constant momentum). Unlike
    mmpretrain's BYOL, which updates its ``CosineEMA`` on every forward pass
    and so moves the target ``accumulative_counts`` times per optimizer
    step, the schedule is evaluated at the fraction ``k / K`` of training
    done, which :class:`MomentumTargetMixin` reads from the optimizer
    wrapper after every real optimizer step
    (:func:`optimizer_step_progress`).

    Buffers (BN running statistics) are copied from the online network at
    every step, as ``CosineEMA`` does with ``update_buffers=False``.

    Args:
        model (nn.Module): The online network(s) to average; deep-copied,
            so the target starts equal to them.
        momentum (float): :math:`m_{base} = 1 - \tau_{base}`.
        end_momentum (float): :math:`m_{end}`, reached at the end of
            training. Defaults to 0 (:math:`\tau = 1`).
    """

    def __init__(self,
                 model: nn.Module,
                 momentum: float,
                 end_momentum: float = 0.) -> None:
        for name, value in (('momentum', momentum), ('end_momentum',
                                                     end_momentum)):
            if not 0. <= value <= 1.:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        super().__init__(model, momentum=momentum, end_momentum=end_momentum)
        # The deep copy is already in sync: every later update averages.
        self.steps.fill_(1)
        self._momentum: Optional[float] = None

    def momentum_at(self, progress: float) -> float:
        """The momentum :math:`m_k` after a fraction ``progress = k / K`` of
        the optimizer steps.

        Args:
            progress (float): In ``[0, 1]``.

        Returns:
            float: The momentum.
        """
        if not 0. <= progress <= 1.:
            raise ValueError(f'progress must be in [0, 1], got {progress}')
        cosine = (math.cos(math.pi * progress) + 1) / 2
        return self.end_momentum - (self.end_momentum - self.momentum) * cosine

    @torch.no_grad()
    def sync(self, online: nn.Module) -> None:
        """Copy the online weights and buffers into the target (after the
        online network's ``init_weights``)."""
        self.module.load_state_dict(online.state_dict())

    @torch.no_grad()
    def step(self, online: nn.Module, progress: float) -> None:
        """Move the target towards ``online`` once, with the momentum of
        :meth:`momentum_at` ``(progress)``.

        Args:
            online (nn.Module): The online network(s), structured as the
                module given at construction.
            progress (float): Fraction ``k / K`` of the optimizer steps done
                (the one just taken included).
        """
        self._momentum = self.momentum_at(progress)
        try:
            self.update_parameters(online)
        finally:
            self._momentum = None

    def avg_func(self, averaged_param: torch.Tensor,
                 source_param: torch.Tensor, steps: int) -> None:
        """One EMA update with the momentum set by :meth:`step`."""
        if self._momentum is None:
            raise RuntimeError('MomentumTarget moves through step(online, '
                               'progress) only (once per optimizer step)')
        averaged_param.mul_(1 - self._momentum).add_(
            source_param, alpha=self._momentum)


def stepping_optim_wrapper(optimizer: Optimizer) -> Optional[OptimWrapper]:
    """The mmengine optimizer wrapper whose ``step()`` is running
    ``optimizer.step()`` now (call it from a torch optimizer step hook).

    mmengine steps an optimizer only from ``OptimWrapper.step`` (inside
    ``update_params``, whoever calls it: ``BaseModel.train_step``,
    ``MMDistributedDataParallel.train_step``, which bypasses the model's own
    ``train_step``, or a loop of one's own), so that wrapper is on the call
    stack of the step. It alone knows the gradient accumulation.

    Args:
        optimizer (Optimizer): The torch optimizer that is stepping.

    Returns:
        OptimWrapper, optional: The wrapper, or None when ``optimizer`` is
        stepped by code of one's own (a plain torch loop).
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get('self')
        if isinstance(owner, OptimWrapper) and owner.optimizer is optimizer:
            return owner
        frame = frame.f_back
    return None


def optimizer_step_progress(optim_wrapper: OptimWrapper) -> float:
    """The fraction ``k / K`` of the optimizer steps done, just after a real
    step of ``optim_wrapper``.

    With ``A = accumulative_counts``, ``n`` iterations done (the wrapper's
    ``inner_count``, the one just stepped included) and ``N`` iterations in
    all (the train loop's ``max_iters``, given to the wrapper by
    ``initialize_count_status``): ``k = ceil(n / A)`` and ``K = ceil(N /
    A)``, as mmengine also steps on a shorter last group. So the cosine
    schedule runs over the whole training whatever ``A``, and a resumed run
    (the loop restores ``n``) continues it exactly.

    Args:
        optim_wrapper (OptimWrapper): The wrapper that has just stepped.

    Returns:
        float: ``k / K``, in ``(0, 1]``.

    Raises:
        RuntimeError: When no train loop initialised the wrapper's counts.
    """
    counts = optim_wrapper._accumulative_counts
    total = optim_wrapper._max_counts
    if total < 1:
        raise RuntimeError(
            'the momentum target moves by the fraction of optimizer steps '
            'done, but the optimizer wrapper does not know how many '
            'iterations the training has: outside an mmengine train loop, '
            'call optim_wrapper.initialize_count_status(model, 0, max_iters) '
            'before the first step.')
    return (math.ceil(optim_wrapper.inner_count / counts) /
            math.ceil(total / counts))


def optimizes(optimizer: Optimizer, module: nn.Module) -> bool:
    """Whether ``optimizer`` holds any parameter of ``module``."""
    held = {id(p) for group in optimizer.param_groups for p in group['params']}
    return any(id(p) in held for p in module.parameters())


#: The models whose optimizer steps are watched (weak: a model that is
#: gone takes its hook away; a deep copy of a model is another model).
_WATCHED: 'weakref.WeakSet[nn.Module]' = weakref.WeakSet()


class MomentumTargetMixin:
    """For algorithms whose momentum target averages their backbone and
    neck, moved once per real optimizer step, with no hook.

    Put it before the mmpretrain base class (``class A(MomentumTargetMixin,
    BaseSelfSupervisor)``) and call :meth:`build_momentum_target` at the end
    of ``__init__``.

    At its first forward pass in training mode the model registers torch's
    optimizer step post-hook
    (``torch.optim.optimizer.register_optimizer_step_post_hook``), which
    runs after every real optimizer step, and only then, whoever takes it:
    the model's own ``train_step``, ``MMDistributedDataParallel.train_step``
    (which bypasses the model's), a loop of one's own. No step is taken on
    the iterations that only accumulate gradients, nor when AMP's loss
    scaler skips one. After a step of an optimizer that holds the model's
    online parameters, taken by an mmengine ``OptimWrapper``, the target
    moves once, by the momentum of step ``k`` of ``K``
    (:func:`optimizer_step_progress`); this is before the Runner's
    after-iteration hooks, so a checkpoint holds a target in step with its
    online weights and ``--resume`` continues exactly. Each model has its
    own hook (held weakly; removed when the model is collected), so several
    models can train in one process. A loop stepping a plain torch
    optimizer calls :meth:`momentum_update` itself.

    Why not in ``train_step``: under DDP mmengine's wrapper runs the data
    preprocessor, the forward and ``update_params`` itself, and the model's
    ``train_step`` is never called.
    """

    def build_momentum_target(self,
                              momentum: float,
                              end_momentum: float = 0.) -> None:
        """Create ``self.target_net``, a :class:`MomentumTarget` of
        backbone and neck.

        Args:
            momentum (float): Base momentum ``1 - τ_base``.
            end_momentum (float): Final momentum. Defaults to 0.
        """
        self.target_net = MomentumTarget(
            self._online(), momentum=momentum, end_momentum=end_momentum)

    def _online(self) -> nn.Module:
        """The online modules the target averages."""
        return nn.Sequential(self.backbone, self.neck)

    def init_weights(self) -> None:
        """Initialise the online networks, then copy them into the
        target."""
        super().init_weights()
        self.target_net.sync(self._online())

    def forward(self, *args, **kwargs):
        """The base class's ``forward``; in training mode, the target first
        starts following the optimizer steps (once per model)."""
        if self.training and self not in _WATCHED:
            _WATCHED.add(self)
            model = weakref.ref(self)

            def after_step(optimizer: Optimizer, args, kwargs) -> None:
                alive = model()
                if alive is not None:
                    alive.after_optimizer_step(optimizer)

            handle = register_optimizer_step_post_hook(after_step)
            weakref.finalize(self, handle.remove)
        return super().forward(*args, **kwargs)

    def after_optimizer_step(self, optimizer: Optimizer) -> None:
        """Move the target once if ``optimizer`` holds the online parameters
        and an mmengine optimizer wrapper stepped it (torch's step
        post-hook).

        Args:
            optimizer (Optimizer): The optimizer that has just stepped.
        """
        if not optimizes(optimizer, self._online()):
            return
        optim_wrapper = stepping_optim_wrapper(optimizer)
        if optim_wrapper is not None:
            self.momentum_update(optimizer_step_progress(optim_wrapper))
        elif not getattr(self, '_warned_unwrapped_step', False):
            self._warned_unwrapped_step = True
            print_log(
                f'{type(self).__name__}: an optimizer holding the online '
                'parameters stepped outside an mmengine OptimWrapper '
                f'({type(optimizer).__name__} stepped by code of its own, or '
                'another wrapper class), so the momentum target did not '
                'move: such a loop calls model.momentum_update(progress) '
                'after each optimizer step itself.',
                logger='current',
                level=logging.WARNING)

    def momentum_update(self, progress: float) -> None:
        """Move the target once (after each real optimizer step; a loop of
        one's own with a plain torch optimizer calls it itself).

        Args:
            progress (float): Fraction ``k / K`` of the optimizer steps
                done, in ``[0, 1]``.
        """
        self.target_net.step(self._online(), progress)
