from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...models.algorithms.ediy import check_region_grids, check_two_views
from ...models.algorithms.teacher import (TeacherCheckpointError,
                                          weights_fingerprint)
from ...utils import preserved_random_state

__all__ = ['TeacherHook']


@HOOKS.register_module()
class TeacherHook(Hook):
    """Check E-DIY's teacher before training and keep it frozen.

    Before the first iteration it fails with one clear error when

    - the teacher is still at its random init (its checkpoint was never
      loaded) or its weights changed since loading (for example a
      ``load_from`` of another model overwrote them);
    - the teacher's last map has another grid than the online backbone's
      on a probe image and ``model.region_grid`` does not reconcile them
      (:func:`~ediy_mm.models.check_region_grids`: the error names both
      grids and the options);
    - a sample of the training set does not hold the views the model
      trains on (``model.check_views``; exactly two for E-DIY).

    At every epoch it checks that the teacher is in eval mode with no
    trainable parameter, and it logs the teacher's weight fingerprint.

    Args:
        probe_size (int, optional): Side of the square probe image used to
            compare the grids; ``None`` (default): the size of the first
            view of a training sample (224 without a training set).
    """

    priority = 'VERY_HIGH'

    def __init__(self, probe_size: Optional[int] = None) -> None:
        self.probe_size = probe_size

    @staticmethod
    def _algorithm(runner) -> torch.nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        """Verify the teacher, the grids and the number of views."""
        model = self._algorithm(runner)
        views = self._sample_views(runner)
        teacher = getattr(model, 'teacher', None)
        if teacher is not None:
            self._check_teacher_weights(teacher)
            self._check_grids(model, teacher, views)
            runner.logger.info(
                f'TeacherHook: teacher {teacher.checkpoint} fingerprint '
                f'{teacher.loaded_fingerprint}')
        else:
            runner.logger.info('TeacherHook: no frozen teacher (region_source'
                               f'={getattr(model, "region_source", None)!r})')
        if views is not None:
            check_views = getattr(model, 'check_views', check_two_views)
            check_views(views)

    @staticmethod
    def _sample_views(runner) -> Optional[list]:
        """The views of the first training sample, as a batch of one."""
        if runner.train_dataloader is None:
            return None
        dataset = runner.train_dataloader.dataset
        if len(dataset) == 0:
            raise ValueError('the training set is empty')
        with preserved_random_state():  # training draws the same
            inputs = dataset[0]['inputs']
        if isinstance(inputs, (list, tuple)):
            return [x.unsqueeze(0) for x in inputs]
        return inputs

    def before_train_epoch(self, runner) -> None:
        """Re-assert that the teacher is frozen."""
        teacher = getattr(self._algorithm(runner), 'teacher', None)
        if teacher is None:
            return
        if any(m.training for m in teacher.modules()) or any(
                p.requires_grad for p in teacher.parameters()):
            raise RuntimeError('the E-DIY teacher must stay frozen in eval '
                               'mode, but something put it in training '
                               'mode or made its parameters trainable')

    @staticmethod
    def _check_teacher_weights(teacher) -> None:
        if teacher.loaded_fingerprint is None:
            raise TeacherCheckpointError(
                f'The teacher is at its random init: its checkpoint '
                f'{teacher.checkpoint!r} was never loaded (the Runner loads '
                'it in model.init_weights()).')
        now = weights_fingerprint(teacher.backbone)
        if now != teacher.loaded_fingerprint:
            raise TeacherCheckpointError(
                f'The teacher weights changed after loading '
                f'{teacher.checkpoint!r} (fingerprint '
                f'{teacher.loaded_fingerprint} -> {now}); was a checkpoint '
                'of another teacher loaded with load_from?')

    def _probe(self, views: Optional[list],
               device: torch.device) -> torch.Tensor:
        """A zero image of the probe size: ``probe_size``, else the first
        training view's size."""
        if self.probe_size is not None:
            size = (self.probe_size, self.probe_size)
        elif isinstance(views, list) and views and views[0].dim() == 4:
            size = tuple(views[0].shape[-2:])
        else:
            size = (224, 224)
        return torch.zeros(1, 3, *size, device=device)

    def _check_grids(self, model, teacher, views: Optional[list]) -> None:
        param: Optional[torch.Tensor] = next(model.backbone.parameters())
        probe = self._probe(views, param.device)
        was_training = model.backbone.training
        model.backbone.eval()
        with torch.no_grad():
            online = model.backbone(probe)[-1].shape[-2:]
        model.backbone.train(was_training)
        guide = teacher(probe).shape[-2:]
        try:
            check_region_grids(guide, online,
                               getattr(model, 'region_grid', None))
        except ValueError as err:
            h, w = probe.shape[-2:]
            raise ValueError(f'On a {h}x{w} px image {err}') from None
