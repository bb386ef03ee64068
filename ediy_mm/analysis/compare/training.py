"""Training-side pieces of the method comparison: a step clock and a
wall-clock budget.

:class:`TrainingClockHook` times every training step and, given a budget in
minutes, ends training at the deadline: the current epoch stops after the
iteration that crossed it and becomes the last one, so the checkpoint hook
saves it and the kNN monitor evaluates it, as at a normal end. Stopping
within an epoch needs :class:`StoppableEpochBasedTrainLoop`
(``train_cfg.type``); mmengine's loop only looks at ``stop_training``
between epochs. Both are registered into mmpretrain's registries::

    custom_imports = dict(imports=['ediy_mm', 'ediy_mm.analysis.compare.training'])
    train_cfg = dict(type='StoppableEpochBasedTrainLoop', max_epochs=100)
    custom_hooks = [dict(type='TrainingClockHook', minutes=30)]

:class:`ChannelsLastHook` puts the model in the channels-last memory
format before training (``--channels-last``).

It also runs a method's training in this process for the comparison
(:func:`train`) and reads what a finished run left: its last checkpoint,
its step times and its kNN curve (:func:`clock_metrics`).
"""  # noqa: E501
import contextlib
import glob
import json
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmpretrain.registry import HOOKS, LOOPS

__all__ = [
    'CLOCK_FILE', 'ChannelsLastHook', 'StoppableEpochBasedTrainLoop',
    'TrainingClockHook', 'clock_metrics', 'last_checkpoint', 'train'
]

#: What :class:`TrainingClockHook` writes into the work directory.
CLOCK_FILE = 'training_clock.json'


@LOOPS.register_module()
class StoppableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's epoch loop, but ``stop_training`` ends the current epoch
    after the iteration that set it (the epoch hooks still run)."""

    def run_epoch(self) -> None:
        """Iterate one epoch, or until ``stop_training`` is set."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
            if self.stop_training:
                break
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Put the model's weights in the channels-last memory format before
    training (convolutions then run channels-last: faster with bf16 on
    recent GPUs)."""

    def before_train(self, runner) -> None:
        """Convert the model (online, target and teacher)."""
        runner.model.to(memory_format=torch.channels_last)


@HOOKS.register_module()
class TrainingClockHook(Hook):
    """Time the training steps; optionally stop at a wall-clock deadline.

    A step is the time from just before ``train_step`` (the last
    ``before_train_iter`` hook) to the end of the ``after_train_iter``
    hooks: forward, backward, optimizer step and the momentum update, not
    the wait for data. The training time is the wall-clock time since
    ``before_train``, kNN evaluations and checkpoints included; it goes
    into every checkpoint (``meta['training_seconds']``) with the step
    times, so a resumed run continues the count from its checkpoint.

    After training it writes :data:`CLOCK_FILE` to the work directory:
    ``step_seconds`` (every step), ``training_seconds``, ``iterations``,
    ``epochs`` begun, ``max_epochs``, ``batch_size``, ``iters_per_epoch``
    and ``stopped_at_deadline``.

    Args:
        minutes (float, optional): Training budget. At the first iteration
            that ends past it, the epoch ends, is saved and evaluated as
            the last one. Needs :class:`StoppableEpochBasedTrainLoop`.
            Defaults to None (no deadline).
    """

    priority = 'LOWEST'

    def __init__(self, minutes: Optional[float] = None) -> None:
        if minutes is not None and minutes <= 0:
            raise ValueError(f'minutes must be > 0, got {minutes}')
        self.minutes = minutes
        self.step_seconds: List[float] = []
        self.seconds_before = 0.0
        self.start = 0.0
        self.step_start = 0.0
        self.stopped_at_deadline = False

    def before_train(self, runner) -> None:
        """Check the loop; start the clock."""
        if self.minutes is not None and not isinstance(
                runner.train_loop, StoppableEpochBasedTrainLoop):
            raise TypeError(
                'TrainingClockHook(minutes=...) needs train_cfg.type='
                "'StoppableEpochBasedTrainLoop' to stop within an epoch; "
                f'the loop is {type(runner.train_loop).__name__}')
        self.start = time.perf_counter()

    def training_seconds(self) -> float:
        """Training time so far, earlier sessions of a resumed run
        included."""
        return self.seconds_before + time.perf_counter() - self.start

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Start the step."""
        self.step_start = time.perf_counter()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """End the step; stop the loop once past the deadline."""
        self.step_seconds.append(time.perf_counter() - self.step_start)
        if (self.minutes is not None and not self.stopped_at_deadline
                and self.training_seconds() >= 60 * self.minutes):
            loop = runner.train_loop
            self.stopped_at_deadline = True
            loop.stop_training = True
            loop._max_epochs = loop.epoch + 1
            runner.logger.info(
                f'TrainingClockHook: the {self.minutes} min budget is spent'
                f' after iteration {runner.iter + 1}; epoch '
                f'{loop.epoch + 1} is the last.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the clock in the checkpoint."""
        checkpoint.setdefault('meta', {}).update(
            training_seconds=self.training_seconds(),
            step_seconds=list(self.step_seconds))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Continue the clock of a resumed checkpoint."""
        meta = checkpoint.get('meta', {})
        self.seconds_before = meta.get('training_seconds', 0.0)
        self.step_seconds = list(meta.get('step_seconds', []))

    def after_train(self, runner) -> None:
        """Write :data:`CLOCK_FILE`."""
        record = dict(
            training_seconds=self.training_seconds(),
            iterations=runner.iter,
            epochs=runner.epoch,
            max_epochs=runner.max_epochs,
            batch_size=runner.train_dataloader.batch_size,
            iters_per_epoch=len(runner.train_dataloader),
            stopped_at_deadline=self.stopped_at_deadline,
            step_seconds=self.step_seconds)
        with open(osp.join(runner.work_dir, CLOCK_FILE), 'w') as f:
            json.dump(record, f)


class _ProgressHook(Hook):
    """Reports the Runner's iterations to a callback (in-process only)."""

    priority = 'LOWEST'

    def __init__(self, report: Callable[[float, str], None]) -> None:
        self.report = report

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self.report(
            (runner.iter + 1) / runner.max_iters,
            f'epoch {runner.epoch + 1}/{runner.max_epochs}, '
            f'iteration {batch_idx + 1}/{len(runner.train_dataloader)}')


# -------------------------------------------------------------------- runs
def train(cfg: Config, log_file: str, report: Callable[[float, str],
                                                       None]) -> str:
    """Train with mmengine's Runner in this process; return the last
    checkpoint. Its console output goes to ``log_file``."""
    with open(log_file, 'a') as log, contextlib.redirect_stdout(
            log), contextlib.redirect_stderr(log):
        runner = Runner.from_cfg(cfg)
        runner.register_hook(_ProgressHook(report))
        runner.train()
    with open(osp.join(cfg.work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def last_checkpoint(run_dir: str) -> str:
    """The checkpoint a finished run ended with."""
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _knn_curve(run_dir: str, iters_per_epoch: int) -> List[List[float]]:
    """``[[epoch, kNN top-1], ...]`` from every session's scalars.json (a
    resumed run has several); the latest value of a step wins."""
    points: Dict[int, float] = {}
    for path in sorted(
            glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'knn/top1' in record:
                    points[record['step']] = record['knn/top1']
    return [[step / iters_per_epoch, value]
            for step, value in sorted(points.items())]


def clock_metrics(run_dir: str) -> Tuple[dict, List[List[float]]]:
    """Cost metrics and the kNN curve of a finished training run."""
    with open(osp.join(run_dir, CLOCK_FILE)) as f:
        clock_record = json.load(f)
    steps = clock_record['step_seconds']
    steady = steps[min(2, len(steps) - 1):]  # the first steps warm up
    step = float(np.median(steady))
    per_epoch = clock_record['iters_per_epoch']
    metrics = dict(
        step_ms=1000 * step,
        images_per_s=clock_record['batch_size'] / step,
        train_minutes=clock_record['training_seconds'] / 60,
        epochs=clock_record['iterations'] / per_epoch)
    return metrics, _knn_curve(run_dir, per_epoch)
