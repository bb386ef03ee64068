"""The momentum target moves once per real optimizer step, by the schedule's
momentum at that step, whatever the gradient accumulation and whatever
steps the optimizer, with no hook (measured from the weights the real
Runner produces); mmpretrain's own BYOL config with ``type='EDIY'`` trains
with the plain Runner."""
import copy
import gc
import glob
import math
import os.path as osp
from unittest.mock import patch

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS
from torch.optim.optimizer import _global_optimizer_post_hooks

from ediy_mm.models import MomentumTarget
from helpers import CPU_EDIY, build_ediy, views

BASE_MOMENTUM = 0.3


@HOOKS.register_module()
class WeightRecorder(Hook):
    """Records online and target weights before training and after every
    iteration."""

    priority = 'LOW'

    def __init__(self):
        self.records = []

    def _record(self, runner):
        model = runner.model
        online = torch.cat([
            p.detach().flatten().clone() for p in model.backbone.parameters()
        ])
        target = torch.cat([
            p.detach().flatten().clone()
            for p in model.target_net.module[0].parameters()
        ])
        self.records.append((online.double(), target.double()))

    def before_train(self, runner):
        self._record(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self._record(runner)


def _train(tmp_path, photos_dir, accumulate, hooks=()):
    cfg = Config.fromfile(CPU_EDIY)
    cfg.work_dir = str(tmp_path / f'accum{accumulate}')
    cfg.model.region_source = 'random'
    cfg.model.teacher = None
    cfg.model.head.update(lambda_rdem=0., lambda_riem=0.)
    cfg.model.base_momentum = BASE_MOMENTUM
    cfg.train_dataloader.update(batch_size=2, num_workers=0, drop_last=True)
    cfg.train_dataloader.dataset.update(data_root=photos_dir, repeat=1)
    (views, ) = [
        t for t in cfg.train_dataloader.dataset.pipeline if 'transforms' in t
    ]
    crop = views.transforms[0][0]
    assert crop.type == 'RandomResizedCrop'
    crop.scale = 64  # 2 x 2 regions: the test is about the target only
    cfg.optim_wrapper.accumulative_counts = accumulate
    cfg.optim_wrapper.optimizer.lr = 0.5
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=6)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 100
    cfg.log_processor = dict(by_epoch=False)
    recorder = dict(type='WeightRecorder')
    cfg.custom_hooks = [*(dict(type=h) for h in hooks), recorder]
    runner = Runner.from_cfg(cfg)
    runner.train()
    (hook, ) = [h for h in runner.hooks if isinstance(h, WeightRecorder)]
    (log, ) = glob.glob(osp.join(cfg.work_dir, '*', '*.log'))
    with open(log) as f:
        return hook.records, f.read()


def schedule(k, total):
    """BYOL's cosine schedule of the momentum (1 - tau), written anew."""
    return BASE_MOMENTUM * (math.cos(math.pi * k / total) + 1) / 2


@pytest.mark.parametrize('accumulate,hooks', [(1, ()),
                                              (2, ('MomentumTargetHook', )),
                                              (4, ())])
def test_target_moves_once_per_optimizer_step(tmp_path, photos_dir, accumulate,
                                              hooks):
    """No hook; a config still listing the old MomentumTargetHook (here
    with A = 2; A = 2 without it: the one-line config below and the DDP
    run of test_distributed) trains the same: the hook does nothing but
    say so, once."""
    records, log = _train(tmp_path, photos_dir, accumulate, hooks)
    assert log.count('MomentumTargetHook is no longer needed') == len(hooks)
    online_0, target_0 = records[0]
    assert torch.equal(online_0, target_0)  # synced after init_weights
    total = math.ceil(6 / accumulate)  # 4: a shorter last group of 2
    steps = 0
    for i in range(1, len(records)):
        online, target = records[i]
        _, previous = records[i - 1]
        stepped = not torch.equal(online, records[i - 1][0])
        if not stepped:
            # between optimizer steps the target does not move
            assert torch.equal(target, previous), i
            continue
        steps += 1
        gap = online - previous
        measured = float((target - previous) @ gap / (gap @ gap))
        assert measured == pytest.approx(schedule(steps, total), rel=1e-5)
        # and it is exactly an EMA: every weight moved by that fraction
        torch.testing.assert_close(
            target, previous + measured * gap, rtol=0, atol=1e-6)
    assert steps == total


def test_momentum_target_validates_and_syncs():
    online = torch.nn.Linear(3, 2)
    target = MomentumTarget(online, momentum=0.1)
    assert target.momentum_at(0) == pytest.approx(0.1)
    assert target.momentum_at(1) == pytest.approx(0.)
    with pytest.raises(ValueError, match='progress'):
        target.momentum_at(1.5)
    with pytest.raises(ValueError, match='momentum must be in'):
        MomentumTarget(online, momentum=2.)
    with pytest.raises(RuntimeError, match='once per optimizer step'):
        target.update_parameters(online)
    torch.nn.init.ones_(online.weight)
    target.sync(online)
    assert torch.equal(target.module.weight, online.weight)


def _byol_only():
    """A small E-DIY with its region terms off (BYOL), initialised."""
    model = build_ediy(lambda_rdem=0., lambda_riem=0.)
    model.init_weights()
    return model.train()


def _optim_wrapper(model, max_iters=4):
    """What the Runner builds and its train loop initialises."""
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    if max_iters:
        wrapper.initialize_count_status(model, 0, max_iters)
    return wrapper


def _step(model, wrapper, seed=0):
    """A training step as ``MMDistributedDataParallel.train_step`` takes
    it: the model's forward, then the wrapper's ``update_params``."""
    losses = model(views(batch=2, seed=seed), None, mode='loss')
    wrapper.update_params(sum(losses.values()))


def test_only_the_target_of_the_stepped_model_moves():
    """Several models in one process (one a deep copy of the other): a step
    of one model's optimizer moves that model's target only, by the
    momentum of that step; a plain torch optimizer moves none (its loop
    calls momentum_update itself)."""
    torch.manual_seed(0)
    first = _byol_only()
    second = copy.deepcopy(first)
    wrappers = _optim_wrapper(first), _optim_wrapper(second)
    target = torch.cat(
        [p.flatten().clone() for p in second.target_net.parameters()])

    _step(first, wrappers[0])
    _step(second, wrappers[1])
    _step(first, wrappers[0], seed=1)
    assert int(first.target_net.steps) == 1 + 2
    assert int(second.target_net.steps) == 1 + 1
    # step 1 of 4: the target moved by m_1 towards the new online weights
    m_1 = 0.004 * (math.cos(math.pi / 4) + 1) / 2
    online = torch.cat([p.flatten() for p in second._online().parameters()])
    moved = torch.cat([p.flatten() for p in second.target_net.parameters()])
    torch.testing.assert_close(
        moved, (1 - m_1) * target + m_1 * online, rtol=0, atol=1e-6)

    optimizer = torch.optim.SGD(second.parameters(), lr=0.1)
    warnings = []
    for _ in range(2):
        sum(second(views(batch=2), None, mode='loss').values()).backward()
        with patch('ediy_mm.models.utils.momentum_target.print_log') as log:
            optimizer.step()
        warnings += [call.args[0] for call in log.call_args_list]
    assert int(second.target_net.steps) == 1 + 1
    # said once, with what to do
    assert len(warnings) == 1 and 'did not move' in warnings[0]
    assert 'momentum_update(progress)' in warnings[0]


def test_a_wrapper_no_train_loop_initialised_is_named():
    model = _byol_only()
    with pytest.raises(RuntimeError, match='initialize_count_status'):
        _step(model, _optim_wrapper(model, max_iters=None))


def test_the_step_hook_goes_with_the_model():
    """One torch step hook per model that trained, removed with it."""
    gc.collect()  # the models of earlier tests take their hooks away
    before = len(_global_optimizer_post_hooks)
    model = _byol_only()
    model.eval()(views(batch=2), None, mode='loss')  # not training: none
    assert len(_global_optimizer_post_hooks) == before
    wrapper = _optim_wrapper(model.train())
    _step(model, wrapper)
    _step(model, wrapper)
    assert len(_global_optimizer_post_hooks) == before + 1
    del model, wrapper
    gc.collect()
    assert len(_global_optimizer_post_hooks) == before


#: A user's config: mmpretrain's own BYOL, our package, our algorithm
#: (teacher-free) with its neck and head, gradient accumulation, no hook.
ONE_LINE = """_base_ = 'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py'  # noqa: E501
custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)
model = dict(
    type='EDIY',
    region_source='target',
    neck=dict(
        _delete_=True,
        type='EDIYNeck',
        in_channels=2048,
        hid_channels=4096,
        out_channels=256),
    head=dict(
        _delete_=True, type='EDIYHead', predictor=_base_.model.head.predictor))
optim_wrapper = dict(accumulative_counts=2)
"""


def test_one_line_config_trains_with_the_plain_runner(tmp_path, photos_dir,
                                                      monkeypatch):
    """The config above, shrunk for the CPU (ResNet-18, 64 px views, 10
    photos in batches of 2, one epoch: 5 iterations, so 3 optimizer steps,
    the last on a group of 1), trains with mmengine's plain Runner and its
    target moves once per optimizer step, at the schedule's k / K."""
    path = tmp_path / 'ediy_on_byol.py'
    path.write_text(ONE_LINE)
    cfg = Config.fromfile(str(path))
    assert 'custom_hooks' not in cfg
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.backbone.update(depth=18, norm_cfg=dict(type='BN'))
    cfg.model.neck.update(
        in_channels=512,
        hid_channels=64,
        out_channels=32,
        norm_cfg=dict(type='BN1d'))
    cfg.model.head.predictor.update(
        in_channels=32,
        hid_channels=64,
        out_channels=32,
        norm_cfg=dict(type='BN1d'))
    loader = cfg.train_dataloader
    pipeline = loader.dataset.pipeline
    for view in pipeline[1].transforms:
        assert view[0].type == 'RandomResizedCrop'
        view[0].scale = 64
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader.dataset = dict(
        type='CustomDataset',
        data_root=photos_dir,
        with_label=False,
        indices=10,
        pipeline=pipeline)
    cfg.train_cfg.max_epochs = 1

    steps = []
    move = MomentumTarget.step

    def spy(target, online, progress):
        steps.append(progress)
        move(target, online, progress)

    monkeypatch.setattr(MomentumTarget, 'step', spy)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 5
    assert steps == pytest.approx([1 / 3, 2 / 3, 1])
    assert int(runner.model.target_net.steps) == 1 + 3
