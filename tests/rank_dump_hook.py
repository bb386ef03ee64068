"""Test-only hooks: every rank saves its online parameters after training
(BN running statistics are per process on CPU, so only parameters are
expected to agree), or the seeds of its augmentation draws."""
import json
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RankDumpHook(Hook):

    def after_run(self, runner) -> None:
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        state = {
            k: v.detach()
            for k, v in model.named_parameters()
            if k.startswith(('backbone.', 'neck.', 'head.', 'target_net.'))
        }
        torch.save(state, osp.join(runner.work_dir, f'rank{get_rank()}.pth'))


@HOOKS.register_module()
class AugmentSeedDumpHook(Hook):
    """Every rank records, per training iteration, the seed of the batch
    generator its ``PhotometricDataPreprocessor`` drew its augmentations
    from, and saves them after training (``augment_rank{r}.json``)."""

    def before_train(self, runner) -> None:
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        preprocessor = model.data_preprocessor
        draw = preprocessor.batch_generator
        self.seeds = {}

        def recorded():
            generator = draw()
            self.seeds[runner.iter] = generator.initial_seed()
            return generator

        preprocessor.batch_generator = recorded

    def after_run(self, runner) -> None:
        path = osp.join(runner.work_dir, f'augment_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.seeds, f)
