"""MosRep's linear-probe protocol (the release's linear_prob.py): the
``LARC`` optimiser against apex's formula written as a loop, the config's
numbers, and the config trained by the Runner for two epochs with every
step of the classifier checked against the release's update."""
import math
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from PIL import Image
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)

from ediy_mm.engine import LARC
from ediy_mm.mmdet_plugins import BenchmarkRunner, check_total_batch
from helpers import ROOT

MOSREP_LINEAR = osp.join(
    ROOT, 'configs/benchmarks/mmpretrain/'
    'resnet50_8xb512-linear-larc-coslr-90e_in1k.py')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One intra-op thread (the suite shares 2 cores), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def norm(values):
    return math.sqrt(sum(float(v)**2 for v in values))


def apex_larc_sgd_step(params, grads, buffers, lr, momentum, weight_decay,
                       trust, eps, clip):
    """One step of apex's LARC around torch's SGD (MosRep's utils/lars.py,
    then SGD with weight decay 0), parameter by parameter with Python
    floats; updates ``params`` (lists of floats) and ``buffers`` in place."""
    for index, (p, g) in enumerate(zip(params, grads)):
        p_norm, g_norm = norm(p), norm(g)
        if p_norm != 0 and g_norm != 0:
            rate = trust * p_norm / (g_norm + p_norm * weight_decay + eps)
            if clip:
                rate = min(rate / lr, 1)
            g = [(gi + weight_decay * pi) * rate for gi, pi in zip(g, p)]
        if buffers[index] is None:
            buffers[index] = list(g)
        else:
            buffers[index] = [
                momentum * b + gi for b, gi in zip(buffers[index], g)
            ]
        params[index] = [pi - lr * b for pi, b in zip(p, buffers[index])]


@pytest.mark.parametrize('clip,weight_decay', [(False, 0.), (True, 1e-2),
                                               (False, 1e-3)])
def test_larc_is_apex_larc_around_sgd(clip, weight_decay):
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(3, 4) * 0.1)
    bias = torch.nn.Parameter(torch.zeros(3))  # zero norm: not scaled
    frozen = torch.nn.Parameter(torch.randn(2), requires_grad=False)
    optimizer = LARC([weight, bias, frozen],
                     lr=0.5,
                     momentum=0.9,
                     weight_decay=weight_decay,
                     trust_coefficient=0.02,
                     clip=clip)
    params = [weight.detach().flatten().tolist(), bias.detach().tolist()]
    buffers = [None, None]
    for step, lr in enumerate([0.5, 0.5, 0.3, 0.1]):
        for group in optimizer.param_groups:
            group['lr'] = lr
        weight.grad = torch.randn(3, 4) * (step + 1)
        bias.grad = torch.randn(3)
        grads = [weight.grad.flatten().tolist(), bias.grad.tolist()]
        optimizer.step()
        apex_larc_sgd_step(params, grads, buffers, lr, 0.9, weight_decay, 0.02,
                           1e-8, clip)
        torch.testing.assert_close(
            weight.detach().flatten(),
            torch.tensor(params[0]),
            rtol=1e-5,
            atol=1e-7)
        torch.testing.assert_close(
            bias.detach(), torch.tensor(params[1]), rtol=1e-5, atol=1e-7)
        assert optimizer.param_groups[0]['weight_decay'] == weight_decay
    with pytest.raises(ValueError, match='trust_coefficient'):
        LARC([weight], lr=0.1, trust_coefficient=0)


def test_step_hooks_run_once_per_larc_step():
    """Once an SGD exists torch wraps SGD.step with the hook caller too;
    LARC's inner SGD step must not call the hooks a second time."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.)
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = LARC([param], lr=0.1, trust_coefficient=0.001, clip=False)
    calls = []
    hook = register_optimizer_step_post_hook(lambda *_: calls.append(1))
    try:
        for _ in range(2):
            param.grad = torch.ones(3)
            optimizer.step()
    finally:
        hook.remove()
    assert len(calls) == 2


def test_config_is_the_releases_protocol():
    cfg = Config.fromfile(MOSREP_LINEAR)
    optimizer = cfg.optim_wrapper.optimizer
    # --lr 0.1, scaled by 8 x 512 / 256 and again by 512 / 256
    assert optimizer == dict(
        type='LARC',
        lr=0.1 * 8 * 512 / 256 * 512 / 256,
        momentum=0.9,
        weight_decay=0.,
        trust_coefficient=0.001,
        clip=False,
        eps=1e-8)
    assert cfg.train_dataloader.batch_size == 512
    assert cfg.auto_scale_lr.base_batch_size == 4096
    check_total_batch(cfg, 8)
    with pytest.raises(ValueError, match='run 8 processes'):
        check_total_batch(cfg, 4)
    assert cfg.train_cfg.max_epochs == 90
    (cosine, ) = cfg.param_scheduler
    assert cosine.type == 'CosineAnnealingLR' and cosine.by_epoch
    assert not cosine.get('convert_to_iter_based')  # once per epoch
    assert (cosine.T_max, cosine.begin, cosine.end) == (90, 0, 90)
    assert cfg.model.backbone.frozen_stages == 4
    assert cfg.runner_type == 'BenchmarkRunner'
    # the optimiser the config builds on the classifier is LARC
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(wrapper.optimizer) is LARC
    assert wrapper.optimizer.trust_coefficient == 0.001
    assert wrapper.optimizer.clip is False


@pytest.fixture
def labelled_photos(tmp_path, photos_dir):
    """Five classes of two photos each (64 px thumbnails), as an
    ImageNet-style folder."""
    root = tmp_path / 'classes'
    for index, name in enumerate(sorted(os.listdir(photos_dir))[:10]):
        folder = root / f'class{index % 5}'
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(osp.join(photos_dir, name)) as photo:
            photo.convert('RGB').resize((64, 64)).save(folder / name)
    return str(root)


def tiny_probe_config(tmp_path, data_root):
    """The config with a small frozen ResNet-18 (its checkpoint saved
    first), 32 px crops of five photo classes, batch 4 (the total batch the
    run is checked against), two epochs; and the backbone's saved state."""
    cfg = Config.fromfile(MOSREP_LINEAR)
    small = dict(depth=18, base_channels=16, stem_channels=16)
    torch.manual_seed(0)
    backbone = MODELS.build(dict(cfg.model.backbone, **small, init_cfg=None))
    checkpoint = str(tmp_path / 'pretrained.pth')
    state = backbone.state_dict()
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in state.items()
        }), checkpoint)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=32, backend='pillow'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')
    ]
    loader = dict(
        batch_size=4,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='CustomDataset', data_root=data_root, pipeline=pipeline))
    cfg.merge_from_dict(
        dict(
            pretrained=checkpoint,
            work_dir=str(tmp_path / 'work'),
            model=dict(
                backbone=small, head=dict(in_channels=128, num_classes=5)),
            train_cfg=dict(max_epochs=2),
            auto_scale_lr=dict(base_batch_size=4),
            randomness=dict(seed=0),
            default_hooks=dict(logger=dict(interval=1))))
    cfg.train_dataloader = loader
    cfg.val_dataloader = loader
    return cfg, state


def test_probe_steps_are_the_releases(tmp_path, labelled_photos):
    """Each optimiser step of the classifier, on the Runner built from the
    config, equals the release's update (apex LARC + SGD as a loop, the lr
    of adjust_learning_rate: 3.2 x (1 + cos(pi epoch / 90)) / 2 per epoch);
    the frozen backbone gets no gradient and does not move."""
    cfg, pretrained = tiny_probe_config(tmp_path, labelled_photos)
    runner = BenchmarkRunner.from_cfg(cfg)
    steps = []

    def before(optimizer, args, kwargs):
        live = [
            p for g in optimizer.param_groups for p in g['params']
            if p.grad is not None
        ]
        steps.append(
            dict(
                lr=optimizer.param_groups[0]['lr'],
                params=[p.detach().flatten().tolist() for p in live],
                grads=[p.grad.detach().flatten().tolist() for p in live],
                live=live))

    def after(optimizer, args, kwargs):
        steps[-1]['after'] = [
            p.detach().flatten().tolist() for p in steps[-1]['live']
        ]

    hooks = [
        register_optimizer_step_pre_hook(before),
        register_optimizer_step_post_hook(after)
    ]
    try:
        runner.train()
    finally:
        for hook in hooks:
            hook.remove()

    iters_per_epoch = 3  # 10 photos in batches of 4
    assert len(steps) == 2 * iters_per_epoch
    head = runner.model.head.fc
    live = steps[0]['live']
    assert len(live) == 2 and live[0] is head.weight and live[1] is head.bias
    assert norm(steps[0]['params'][1]) == 0  # the bias starts at zero
    params, buffers = steps[0]['params'], [None, None]
    for index, step in enumerate(steps):
        epoch = index // iters_per_epoch
        lr = 3.2 * 0.5 * (1 + math.cos(math.pi * epoch / 90))
        assert step['lr'] == pytest.approx(lr, rel=1e-6)
        for got, expected in zip(step['params'], params):
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
        apex_larc_sgd_step(params, step['grads'], buffers, lr, 0.9, 0., 0.001,
                           1e-8, False)
        for got, expected in zip(step['after'], params):
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
    for key, value in runner.model.backbone.state_dict().items():
        assert torch.equal(value, pretrained[key]), key
    # top-1 is evaluated every epoch and its best checkpoint kept, as the
    # release reports the best epoch
    assert 'val/accuracy/top1' in runner.message_hub.log_scalars
    assert len(list((tmp_path / 'work').glob('best_accuracy_top1_*.pth'))) == 1
