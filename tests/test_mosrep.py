"""MosRep: the mosaic view, its RoI features and losses against naive
loops, the algorithms' errors, and every MosRep config."""
import glob
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import nn

from ediy_mm.models.losses import mosaic_byol_loss, mosrep_contrastive_loss
from ediy_mm.models.utils.mosaic import (MosaicSampler, assemble_mosaic,
                                         split_views)
from helpers import PRED, ROOT

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/mosrep/*.py')))
#: ResNet-18 at 1/8 of the width (64 channels in layer 4).
TINY_R18 = dict(type='ResNet', depth=18, stem_channels=8, base_channels=8)
#: BYOL's projector on it (``helpers.PRED`` is the predictor).
PROJECTOR = dict(
    type='NonLinearNeck',
    in_channels=64,
    hid_channels=32,
    out_channels=32,
    norm_cfg=dict(type='BN1d'))


def mosaic_inputs(batch_size=4):
    """Two 64 px views and four 32 px local crops of random images."""
    return ([torch.randn(batch_size, 3, 64, 64) for _ in range(2)] +
            [torch.randn(batch_size, 3, 32, 32) for _ in range(4)])


RELEASED = osp.join(ROOT, 'configs', 'mosrep',
                    'mosrep_resnet50_8xb64-coslr-200e_in1k.py')


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one intra-op thread wastes nothing, two spin against
    each other on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def naive_mosaic(crops, shifts=None):
    """The mosaic of each sample on its own, with Python slicing."""
    b_size, k_size, c, h, w = crops.shape
    grid = math.isqrt(k_size)
    big_h, big_w = grid * h, grid * w
    images, boxes, sources, weights = [], [], [], []
    for b in range(b_size):
        canvas = torch.zeros(c, big_h, big_w)
        cell_ids = torch.full((big_h, big_w), -1)
        for k in range(k_size):
            row, col = divmod(k, grid)
            canvas[:, row * h:(row + 1) * h,
                   col * w:(col + 1) * w] = crops[(b - k) % b_size, k]
            cell_ids[row * h:(row + 1) * h, col * w:(col + 1) * w] = k
        dx, dy = (0, 0) if shifts is None else shifts[b].tolist()
        moved = torch.zeros_like(canvas)
        moved_ids = torch.full_like(cell_ids, -1)
        dst_y = slice(max(0, dy), min(big_h, big_h + dy))
        src_y = slice(max(0, -dy), min(big_h, big_h - dy))
        dst_x = slice(max(0, dx), min(big_w, big_w + dx))
        src_x = slice(max(0, -dx), min(big_w, big_w - dx))
        moved[:, dst_y, dst_x] = canvas[:, src_y, src_x]
        moved_ids[dst_y, dst_x] = cell_ids[src_y, src_x]
        images.append(moved)
        row_boxes, row_sources, row_weights = [], [], []
        for k in range(k_size):
            ys, xs = torch.nonzero(moved_ids == k, as_tuple=True)
            row_boxes.append([
                xs.min().item(),
                ys.min().item(),
                xs.max().item() + 1,
                ys.max().item() + 1
            ])
            row_sources.append((b - k) % b_size)
            row_weights.append(math.sqrt(len(ys) / (h * w)))
        boxes.append(row_boxes)
        sources.append(row_sources)
        weights.append(row_weights)
    return (torch.stack(images), torch.tensor(boxes, dtype=torch.float32),
            torch.tensor(sources), torch.tensor(weights))


@pytest.mark.parametrize('batch_size', [1, 2, 3, 5])
@pytest.mark.parametrize('jitter', [False, True])
def test_mosaic_matches_naive_loop(batch_size, jitter):
    g = torch.Generator().manual_seed(batch_size)
    crops = torch.randn(batch_size, 4, 3, 12, 10, generator=g)
    shifts = None
    if jitter:  # a different shift per sample, both signs, both axes
        shifts = torch.stack([
            torch.randint(-9, 10, (batch_size, ), generator=g),
            torch.randint(-11, 12, (batch_size, ), generator=g)
        ], 1)
    mosaic = assemble_mosaic(crops, shifts, source_offset=7)
    images, boxes, sources, weights = naive_mosaic(crops, shifts)
    assert torch.equal(mosaic.images, images)
    assert torch.equal(mosaic.boxes, boxes)
    assert torch.equal(mosaic.sources, sources + 7)
    assert torch.allclose(mosaic.weights, weights, rtol=0, atol=1e-6)


def test_mosaic_3x3_grid_and_released_jitter_draw():
    crops = torch.randn(4, 9, 3, 6, 6)
    shifts = torch.tensor([[-5, 3]]).expand(4, 2)
    mosaic = assemble_mosaic(crops, shifts)
    expected = naive_mosaic(crops, shifts)
    assert torch.equal(mosaic.images, expected[0])
    assert torch.equal(mosaic.boxes, expected[1])
    torch.manual_seed(0)
    sampler = MosaicSampler(jitter_pixels=48)
    draws = [sampler.draw_shifts(3) for _ in range(200)]
    assert all(d.shape == (3, 2) and (d == d[0]).all() for d in draws)
    values = torch.stack([d[0] for d in draws]).flatten().float()
    assert values.abs().max() <= 48
    # Beta(0.5, 0.5) is U-shaped: most offsets are large
    assert (values.abs() > 24).float().mean() > 0.5
    assert MosaicSampler(jitter_prob=0.).draw_shifts(3) is None


def test_mosaic_errors_name_the_cause():
    crops = torch.randn(2, 4, 3, 8, 8)
    with pytest.raises(ValueError, match='square number of local crops'):
        assemble_mosaic(torch.randn(2, 3, 3, 8, 8))
    with pytest.raises(ValueError, match='hides whole cells'):
        assemble_mosaic(crops, torch.tensor([[8, 0], [0, 0]]))
    with pytest.raises(ValueError, match='integer'):
        assemble_mosaic(crops, torch.zeros(2, 2))
    with pytest.raises(ValueError, match='smaller than the local crops'):
        MosaicSampler(jitter_pixels=8)(crops)
    with pytest.raises(ValueError, match='jitter_prob'):
        MosaicSampler(jitter_prob=2.)
    views = [torch.randn(2, 3, 16, 16)] * 2
    with pytest.raises(ValueError, match='got 2 views'):
        split_views(views)
    with pytest.raises(ValueError, match='local crops must share'):
        split_views(views + [crops[:, 0], torch.randn(2, 3, 4, 4)])
    with pytest.raises(ValueError, match='square number'):
        split_views(views + [crops[:, 0]] * 3)


def naive_contrastive(query, keys, queue, targets, tau, weights):
    total = 0.
    for i in range(query.size(0)):
        q = query[i].double() / query[i].double().norm()
        logits = [(q @ (k.double() / k.double().norm())) / tau for k in keys]
        logits += [(q @ u.double()) / tau for u in queue.t()]
        log_z = torch.logsumexp(torch.stack(logits), 0)
        total += weights[i] * (log_z - logits[targets[i]])
    return total / query.size(0)


def test_contrastive_loss_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    query = torch.randn(8, 5, generator=g)
    keys = torch.randn(6, 5, generator=g)
    queue = F.normalize(torch.randn(5, 10, generator=g), dim=0)
    targets = torch.randint(0, 6, (8, ), generator=g)
    weights = torch.rand(8, generator=g)
    loss = mosrep_contrastive_loss(query, keys, queue, targets, 0.2, weights)
    expected = naive_contrastive(query, keys, queue, targets, 0.2, weights)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    plain = mosrep_contrastive_loss(query, keys, queue, targets, 0.2)
    assert plain.item() == pytest.approx(
        naive_contrastive(query, keys, queue, targets, 0.2,
                          torch.ones(8)).item(),
        rel=1e-5)


def test_mosaic_byol_loss_matches_naive_loop():
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(12, 4, generator=g)
    t1, t2 = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    sources = torch.randint(0, 3, (12, ), generator=g)
    weights = torch.rand(12, generator=g)
    expected = sum(weights[i] *
                   (4 - 2 * F.cosine_similarity(pred[i], t1[sources[i]], 0) -
                    2 * F.cosine_similarity(pred[i], t2[sources[i]], 0))
                   for i in range(12)) / 12
    loss = mosaic_byol_loss(pred, t1, t2, sources, weights)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


class PatchBackbone(BaseModule):
    """A backbone whose output cell sees only its own 32x32 patch."""

    def __init__(self, channels=16):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 32, stride=32)

    def forward(self, x):
        return (torch.relu(self.conv(x)), )


MODELS.register_module('MosRepTestPatchBackbone', module=PatchBackbone)


def build_mosrep(backbone, in_channels, **kwargs):
    MessageHub.get_current_instance().update_info('max_iters', 10)
    return MODELS.build(
        dict(
            type='MosRep',
            backbone=backbone,
            neck=dict(
                type='MosRepNeck',
                in_channels=in_channels,
                hid_channels=32,
                out_channels=16),
            queue_len=32,
            feat_dim=16,
            **kwargs))


def test_cell_feature_equals_its_crop_encoded_alone():
    """Constant crops of 224 px (7 stride-32 cells a side), no jitter: every
    RoIAlign sample falls on a map cell centre of its own cell, and every
    map cell sees only its own patch, so the cell's embedding equals its
    source crop's embedding up to float32 rounding (tolerance 1e-5). With
    a ResNet the two differ by design: receptive fields cross the cell
    borders and the crop alone is zero-padded on all sides."""
    torch.manual_seed(0)
    model = build_mosrep(dict(type='MosRepTestPatchBackbone'), 16).eval()
    colours = torch.rand(3, 4, 3, 1, 1) * 4 - 2
    crops = colours.expand(3, 4, 3, 224, 224).contiguous()
    mosaic = MosaicSampler(jitter_prob=0.)(crops)
    with torch.no_grad():
        cells = model.embed_cells(mosaic)
        alone = model.embed(crops[mosaic.sources.flatten(),
                                  torch.arange(4).repeat(3)])
    assert cells.shape == (12, 16)
    assert torch.allclose(cells, alone, rtol=1e-5, atol=1e-5)
    # not trivially: the cells of different sources differ
    assert (cells[0] - cells[1]).abs().max() > 1e-2


def test_mosrep_and_byol_variant_losses_and_errors():
    torch.manual_seed(0)
    r18 = TINY_R18
    model = build_mosrep(r18, 64, mosaic=dict(jitter_pixels=10))
    model.init_weights()
    inputs = mosaic_inputs()
    queue = model.queue.clone()
    losses = model.loss(inputs, None)
    assert set(losses) == {'loss_plain', 'loss_mosaic'}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.conv1.weight.grad is not None
    assert int(model.queue_ptr) == 4
    assert torch.equal(model.queue[:, 4:], queue[:, 4:])
    assert torch.allclose(model.queue[:, :4].norm(dim=0), torch.ones(4))
    # the queue is a ring: 40 keys into 32 slots
    model._enqueue(F.normalize(torch.randn(30, 16), dim=1))
    assert int(model.queue_ptr) == 2

    with pytest.raises(ValueError, match='model.head=None'):
        build_mosrep(r18, 512, head=dict(type='ContrastiveHead'))
    with pytest.raises(ValueError, match='raise model.queue_len'):
        small = build_mosrep(r18, 64, mosaic=dict(jitter_pixels=10))
        small.queue_len = 2
        small.loss(inputs, None)

    byol = MODELS.build(
        dict(
            type='MosRepBYOL',
            backbone=r18,
            neck=PROJECTOR,
            predictor=PRED,
            mosaic=dict(jitter_pixels=10)))
    byol.init_weights()
    losses = byol.loss(inputs, None)
    assert set(losses) == {'loss_byol', 'loss_mosaic'}
    sum(losses.values()).backward()
    assert byol.predictor.fc0.weight.grad is not None


def test_ediy_mosaic_adds_the_cells_to_byol():
    torch.manual_seed(0)
    ediy = dict(
        type='EDIYMosaic',
        backbone=TINY_R18,
        neck=dict(PROJECTOR, type='EDIYNeck'),
        head=dict(type='EDIYHead', predictor=PRED),
        region_source='target',
        mosaic=dict(jitter_pixels=10))
    model = MODELS.build(ediy)
    model.init_weights()
    inputs = mosaic_inputs()
    losses = model.loss(inputs, None)
    assert set(losses) == {
        'loss_byol', 'loss_rdem', 'loss_riem', 'loss_mosaic'
    }
    losses['loss_mosaic'].backward()
    assert model.neck.global_projector.fc0.weight.grad is not None
    with pytest.raises(ValueError, match='lambda_byol > 0'):
        MODELS.build(dict(ediy, head=dict(ediy['head'], lambda_byol=0.)))
    with pytest.raises(ValueError, match='got 2 views'):
        model.loss(inputs[:2], None)


def view_step(cfg):
    """The pipeline step that makes the views: ``DecodeMultiView`` (the
    device photometric path) or mmpretrain's ``MultiView`` (stock)."""
    steps = [
        step for step in cfg.train_dataloader.dataset.pipeline
        if step.type in ('DecodeMultiView', 'MultiView')
    ]
    assert len(steps) == 1, cfg.train_dataloader.dataset.pipeline
    return steps[0]


def test_every_config_builds_its_model(tmp_path):
    """Configs that differ only in their schedule share one model: each
    distinct model is built once (ResNet-50s are slow to build)."""
    built = []
    MessageHub.get_current_instance().update_info('max_iters', 1)
    teacher = tmp_path / 'teacher.pth'  # only its existence is checked
    teacher.touch()
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        if cfg.model.get('teacher'):
            cfg.model.teacher.checkpoint = str(teacher)
        hooks = [h.type for h in cfg.custom_hooks]
        assert 'MomentumTargetHook' not in hooks, path  # no longer needed
        assert 'RandomStateHook' in hooks
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
        multiview = view_step(cfg)
        assert multiview.num_views[-1] == 4, path
        if cfg.model.to_dict() in built:
            continue
        built.append(cfg.model.to_dict())
        model = MODELS.build(cfg.model)
        assert not any(p.requires_grad
                       for p in model.target_net.parameters()), path
    assert len(built) < len(CONFIGS)


def test_released_recipe():
    cfg = Config.fromfile(RELEASED)
    model = cfg.model
    assert (model.type, model.queue_len, model.feat_dim) == ('MosRep', 65536,
                                                             128)
    assert model.momentum == pytest.approx(1 - 0.999)
    assert model.temperature == 0.2 and model.head is None
    assert model.backbone.depth == 50 and model.backbone.zero_init_residual
    assert model.mosaic == dict(
        jitter_prob=1.0, jitter_pixels=48, jitter_beta=0.5)
    # pretrain_mosrep.sh: torchrun with 8 processes, -b 64 per process,
    # --lr 0.03 scaled by pretrain_ddp.py to 0.03 * 8 * 64 / 256
    assert cfg.train_dataloader.batch_size == 64
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum,
            optimizer.weight_decay) == ('SGD', 0.03 * 8 * 64 / 256, 0.9, 1e-4)
    assert cfg.auto_scale_lr.base_batch_size == 8 * 64
    global_view, local_view = (p[0] for p in view_step(cfg).transforms)
    assert global_view.scale == 224
    assert global_view.crop_ratio_range == (0.2, 1.)
    assert local_view.scale == 112
    assert local_view.crop_ratio_range == (0.1, 0.6)
    for epochs in (100, 200):
        other = Config.fromfile(RELEASED.replace('200e', f'{epochs}e'))
        assert other.train_cfg.max_epochs == epochs
        assert other.param_scheduler[-1].T_max == epochs
