from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS

__all__ = ['RandomStateHook']


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Resume torch's random generators where the checkpoint left them.

    On resume mmengine re-seeds every generator with the run's seed, so
    whatever the model draws after a resume (the random regions and the
    R-INS partners of the ablations, dropout, ...) differs from what an
    uninterrupted run draws. This hook stores torch's CPU and CUDA default
    generator states in each checkpoint (``checkpoint['random_state']``;
    CUDA: the generator of rank 0's device)
    and, on ``--resume``, puts them back right where the uninterrupted run
    would continue: before the first training epoch of an epoch-based loop
    (before its data loader iterator is created), before the first
    iteration of an iteration-based loop (after mmengine has replayed the
    data loader to its position).

    The data side needs nothing here: mmengine replays an iteration-based
    data loader to its position, and the samplers and (non-persistent)
    worker seeds of an epoch are functions of the seed and the epoch.

    The states saved are rank 0's; with mmengine's default
    ``randomness.diff_rank_seed=False`` every rank draws the same stream in
    the model (each on its own GPU), and every rank restores it (into its
    current GPU's generator). With ``diff_rank_seed=True`` the
    ranks keep their re-seeded generators and a warning says so.
    """

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the generator states to ``checkpoint``."""
        checkpoint['random_state'] = dict(
            torch=torch.get_rng_state(),
            cuda=(torch.cuda.get_rng_state()
                  if torch.cuda.is_initialized() else None))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the states of a resumed checkpoint for the first step."""
        if not getattr(runner, '_resume', False):
            return  # load_from: a new run, not a continuation
        state = checkpoint.get('random_state')
        if state is None:
            runner.logger.warning(
                'RandomStateHook: the resumed checkpoint holds no random '
                'state (saved without this hook); the generators stay '
                're-seeded.')
        elif runner._randomness_cfg.get('diff_rank_seed', False):
            runner.logger.warning(
                'RandomStateHook: randomness.diff_rank_seed=True, so rank '
                "0's saved random state is not every rank's; the "
                'generators stay re-seeded.')
        else:
            self._pending = state

    def before_train_epoch(self, runner) -> None:
        """Epoch-based loops: restore before the data loader iterates."""
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            self._restore(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Iteration-based loops: restore after the data replay."""
        self._restore(runner)

    def _restore(self, runner) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state['torch'].cpu())
        if state['cuda'] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state['cuda'].cpu())  # this rank's GPU
        runner.logger.info('RandomStateHook: resumed the random state of '
                           f'epoch {runner.epoch}, iteration {runner.iter}')
