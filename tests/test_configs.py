"""Every E-DIY config parses and builds its model."""
import glob
import math
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
from mmpretrain.registry import MODELS

from helpers import ROOT, load_tool

CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs/ediy/**/*.py'), recursive=True))
PAPER = osp.join(
    ROOT, 'configs/ediy/'
    'ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py')


def load(path, tmp_path):
    cfg = Config.fromfile(path)
    if cfg.model.get('teacher'):
        # only its existence is checked at build time
        fake = tmp_path / 'teacher.pth'
        fake.touch()
        cfg.model.teacher.checkpoint = str(fake)
    return cfg


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds_model(path, tmp_path):
    cfg = load(path, tmp_path)
    if cfg.model.backbone.type == 'TIMMBackbone':
        pytest.importorskip(
            'timm',
            reason='timm is not installed (optional extra: pip '
            'install "ediy_mm[timm]")')
    MessageHub.get_current_instance().update_info('max_iters', 1)
    model = MODELS.build(cfg.model)
    head = getattr(model, 'head')
    assert hasattr(model, 'target_net')
    if cfg.model.type == 'EDIY':
        assert (model.teacher is not None) == (
            head.matches_regions and model.region_source == 'teacher')
        assert not any(p.requires_grad for p in model.target_net.parameters())
        hooks = [h.type for h in cfg.custom_hooks]
        assert 'MomentumTargetHook' not in hooks  # no longer needed
        assert 'find_unused_parameters' not in cfg.get('model_wrapper_cfg', {})


def test_paper_recipe():
    cfg = Config.fromfile(PAPER)
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.optim_wrapper.accumulative_counts == 2
    assert cfg.optim_wrapper.optimizer.type == 'LARS'
    assert cfg.optim_wrapper.optimizer.lr == 3.2
    assert cfg.optim_wrapper.optimizer.weight_decay == 1.5e-6
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['bn'] == dict(decay_mult=0, lars_exclude=True)
    assert keys['bias'] == dict(decay_mult=0, lars_exclude=True)
    assert cfg.model.base_momentum == pytest.approx(1 - 0.996)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 10)
    assert (cosine.type, cosine.begin, cosine.end) == ('CosineAnnealingLR', 10,
                                                       300)
    assert cosine.convert_to_iter_based  # every step, as BYOL
    assert cfg.train_cfg.max_epochs == 300
    # resumable exactly and safely (tests/test_reliability.py)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert 'RandomStateHook' in [h.type for h in cfg.custom_hooks]
    assert cfg.model.teacher.channels_last is True  # docs/benchmarks.md
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.train_dataloader.worker_init_fn.type == (
        'epoch_seeded_worker_init_fn')
    for epochs in (100, 1000):
        other = Config.fromfile(PAPER.replace('300e', f'{epochs}e'))
        assert other.train_cfg.max_epochs == epochs
        assert other.param_scheduler[1].end == epochs


BYOL_FAMILY = [
    PAPER.replace('300e', f'{epochs}e') for epochs in (100, 300, 1000)
] + [
    osp.join(ROOT, 'configs/univip', name)
    for name in ('univip_resnet50_16xb256-coslr-200e_in1k.py',
                 'univip_resnet50_16xb256-coslr-300e_in1k.py',
                 'univip_resnet50_8xb64-coslr-800e_coco.py')
]


@pytest.mark.parametrize('path', BYOL_FAMILY, ids=osp.basename)
def test_lr_is_byols_cosine_at_every_step(path):
    """The rate of each iteration, from the config's schedulers as the
    Runner builds them: linear warm-up, then BYOL's cosine decay at every
    step (not once per epoch)."""
    cfg = Config.fromfile(path)
    steps = 3  # iterations per epoch
    peak = cfg.optim_wrapper.optimizer.lr
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    schedulers = [
        PARAM_SCHEDULERS.build(
            s, default_args=dict(optimizer=optimizer, epoch_length=steps))
        for s in cfg.param_scheduler
    ]
    warmup = cfg.param_scheduler[0]
    warm = warmup.end * steps
    total = cfg.train_cfg.max_epochs * steps
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    cosine = [
        peak * (1 + math.cos(math.pi * (t - warm) / (total - warm))) / 2
        for t in range(warm, total)
    ]
    assert rates[warm:] == pytest.approx(cosine, rel=1e-5, abs=1e-9)
    assert rates[0] == pytest.approx(peak * warmup.start_factor)
    # warm-up at every step too (mmengine reaches the peak one step early)
    assert all(a < b for a, b in zip(rates[:warm - 1], rates[1:warm]))


def test_lars_excludes_local_projector_bn_and_bias(tmp_path):
    cfg = load(PAPER, tmp_path)
    MessageHub.get_current_instance().update_info('max_iters', 1)
    model = MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    excluded = {
        names[id(g['params'][0])]
        for g in wrapper.optimizer.param_groups if g.get('lars_exclude')
    }
    assert 'neck.local_projector.bn0.weight' in excluded
    assert 'neck.local_projector.fc0.bias' in excluded
    assert 'neck.local_projector.fc0.weight' not in excluded


def test_auto_scale_lr_counts_accumulation(monkeypatch):
    train = load_tool('tools/train.py')
    monkeypatch.setattr(sys, 'argv', ['train.py', PAPER, '--auto-scale-lr'])
    cfg = train.merge_args(Config.fromfile(PAPER), train.parse_args())
    assert cfg.auto_scale_lr.enable
    # mmengine's Runner.scale_lr multiplies lr by GPUs x batch / base; on the
    # paper's 16 GPUs x 128 x 2 accumulation steps = 4096 it must be 1.
    assert 16 * 128 / cfg.auto_scale_lr.base_batch_size == 1
    # and on 8 GPUs with the same accumulation, lr halves
    assert 8 * 128 / cfg.auto_scale_lr.base_batch_size == 0.5
