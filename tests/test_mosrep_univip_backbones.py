"""MosRep and UniVIP on a ViT and a ConvNeXt: the mosaic cells pooled from
their grids (non-square included) against a naive loop, the clear errors
for a wrong stride or sizes the patch embedding would pad, every
parameter learning, and the full-size configs."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

from ediy_mm.models.utils.backbone_grid import (check_patch_fit,
                                                global_feature, patch_size,
                                                return_grid)
from ediy_mm.models.utils.mosaic import MosaicSampler, assemble_mosaic
from helpers import ROOT

MOSREP_VIT = osp.join(ROOT,
                      'configs/mosrep/mosrep_vit-mini-p16_cpu-64px_photos.py')
MOSREP_CONVNEXT = osp.join(
    ROOT, 'configs/mosrep/mosrep_convnext-mini_cpu-64px_photos.py')
UNIVIP_VIT = osp.join(ROOT,
                      'configs/univip/univip_vit-mini-p16_cpu-64px_photos.py')
FULL_SIZE = [
    'configs/mosrep/mosrep_vit-small-p16_8xb64-amp-coslr-200e_in1k.py',
    'configs/mosrep/mosrep_convnext-tiny_8xb64-amp-coslr-200e_in1k.py',
    'configs/univip/univip_vit-small-p16_16xb256-amp-coslr-300e_in1k.py'
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one intra-op thread (the suite shares 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(config):
    """The model of a config, initialised."""
    MessageHub.get_current_instance().update_info('max_iters', 10)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    return model


def naive_cell_means(maps, boxes, stride):
    """Each cell's mean over the map cells whose pixels lie in its box
    (boxes on whole cells of ``stride`` px), one sample at a time."""
    out = []
    for b in range(boxes.size(0)):
        for x1, y1, x2, y2 in boxes[b].tolist():
            rows = range(int(y1) // stride, int(y2) // stride)
            cols = range(int(x1) // stride, int(x2) // stride)
            cells = [maps[b, :, r, c] for r in rows for c in cols]
            out.append(torch.stack(cells).mean(0))
    return torch.stack(out)


@pytest.mark.parametrize(
    'config, stride, crop, jitter',
    [
        (MOSREP_VIT, 16, (32, 48), (-32, 16)),  # 64x96 px: 4x6 patches
        (MOSREP_CONVNEXT, 32, (32, 64), (32, 0)),  # 64x128 px: a 2x4 map
    ],
    ids=['vit-p16', 'convnext'])
@pytest.mark.parametrize('jittered', [False, True])
def test_cells_pool_their_own_grid_cells(config, stride, crop, jitter,
                                         jittered):
    """RoIAlign 1x1 of a cell whose box lies on whole grid cells samples
    exactly their centres (adaptive sampling): it is the mean of the
    backbone's grid cells inside the cell, by a naive loop, on non-square
    grids, with a jitter of whole cells (boxes clipped to the canvas).
    A wrong stride would mix in the neighbours' cells."""
    torch.manual_seed(0)
    model = build(config).eval()
    height, width = crop
    crops = torch.randn(3, 4, 3, height, width)
    shifts = torch.tensor([jitter]).expand(3, 2) if jittered else None
    mosaic = assemble_mosaic(crops, shifts)
    sampler = MosaicSampler(roi_size=1, spatial_scale=1 / stride)
    with torch.no_grad():
        pooled = sampler.cell_features(model.backbone, mosaic)
        maps = model.backbone(mosaic.images)[-1]
    assert maps.shape[-2:] == (2 * height // stride, 2 * width // stride)
    expected = naive_cell_means(maps, mosaic.boxes, stride)
    assert pooled.shape == (12, maps.size(1), 1, 1)
    torch.testing.assert_close(pooled.flatten(1), expected)


def test_wrong_stride_and_padded_mosaics_fail_clearly():
    torch.manual_seed(0)
    vit = build(MOSREP_VIT).backbone
    mosaic = assemble_mosaic(torch.randn(2, 4, 3, 32, 32))
    with pytest.raises(ValueError) as err:  # ViT/16 with the ResNet default
        MosaicSampler().cell_features(vit, mosaic)
    assert all(
        part in str(err.value)
        for part in ('64x64 px mosaics', '4x4 grid', 'stride of 16 px',
                     'spatial_scale is 1/32', '1/16 for a ViT/16'))
    odd = assemble_mosaic(torch.randn(2, 4, 3, 20, 20))  # 40 px: 2.5 patches
    with pytest.raises(ValueError) as err:
        MosaicSampler(spatial_scale=1 / 16).cell_features(vit, odd)
    assert all(
        part in str(err.value)
        for part in ('the mosaics', '40x40 px', '16x16 px patches',
                     'MoCoV3ViT', '48x48 px'))
    convnext = build(MOSREP_CONVNEXT).backbone
    with pytest.raises(ValueError, match='spatial_scale is 1/16'):
        MosaicSampler(spatial_scale=1 / 16).cell_features(convnext, mosaic)
    # a ResNet pads: 96 px at stride 32 is a 3x3 map, 100 px a 4x4 one
    resnet = MODELS.build(dict(type='ResNet', depth=18, base_channels=8))
    for side in (48, 50):
        sampler = MosaicSampler(spatial_scale=1 / 32)
        big = assemble_mosaic(torch.randn(1, 4, 3, side, side))
        assert sampler.cell_features(resnet, big).shape == (4, 64, 7, 7)
    # one cell per side fits every stride: 1/16 would pool at twice the scale
    tiny = assemble_mosaic(torch.randn(2, 4, 3, 16, 16))  # 32 px: a 1x1 map
    with pytest.raises(ValueError, match='1x1 grid.*at least 2 cells'):
        MosaicSampler(spatial_scale=1 / 16).cell_features(resnet, tiny)
    assert patch_size(resnet) is None and patch_size(vit) == (16, 16)
    check_patch_fit(resnet, torch.zeros(1, 3, 33, 35), 'any size')


@pytest.mark.parametrize(
    'config', [MOSREP_VIT, MOSREP_CONVNEXT], ids=['vit', 'convnext'])
def test_mosrep_trains_every_parameter(config):
    """The CPU configs' MosRep: both terms, and a gradient for every
    trainable parameter (DDP needs no find_unused_parameters); the
    ViT's frozen patch projection and position embedding stay frozen."""
    torch.manual_seed(0)
    model = build(config).train()
    inputs = ([torch.randn(4, 3, 64, 64) for _ in range(2)] +
              [torch.randn(4, 3, 32, 32) for _ in range(4)])
    losses = model.loss(inputs, None)
    assert set(losses) == {'loss_plain', 'loss_mosaic'}
    sum(losses.values()).backward()
    missing = [
        name for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not missing
    if patch_size(model.backbone):  # the ViT; a ConvNeXt takes any size
        with pytest.raises(ValueError, match='the global views are 56x56'):
            model.embed(torch.randn(2, 3, 56, 56))


def univip_inputs(batch=2, scene=64, instance=32, num=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        [torch.randn(batch, 3, scene, scene, generator=g)
         for _ in range(2)] + [
             torch.randn(batch, 3, instance, instance, generator=g)
             for _ in range(2 * num)
         ])


def test_univip_on_vit_embeds_the_cls_token_per_instance():
    """The instances of all images go through the ViT in one batch
    ``[B*K]``; each embedding is the projection of that instance's cls
    token alone (a naive loop, in eval mode so that BN does not mix the
    batch)."""
    torch.manual_seed(0)
    model = build(UNIVIP_VIT).eval()
    assert model.backbone.out_type == 'cls_token'
    scenes, instances = model.split_views(univip_inputs())
    online = model._online()
    with torch.no_grad():
        batched = model._embed(online, instances[0])
        assert batched.shape == (2, 2, 128)
        for b in range(2):
            for k in range(2):
                alone = model.neck(model.backbone(instances[0][b, k:k + 1]))
                torch.testing.assert_close(batched[b, k], alone[0][0])
    assert model.backbone(scenes[0])[0].shape == (2, 64)  # the cls token


def test_univip_on_vit_trains_and_refuses_padded_views():
    torch.manual_seed(0)
    model = build(UNIVIP_VIT).train()
    losses = model.loss(univip_inputs(), None)
    assert set(losses) == {
        'loss_scene', 'loss_scene_instance', 'loss_instance'
    }
    sum(losses.values()).backward()
    missing = [
        name for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not missing
    with pytest.raises(ValueError) as err:
        model.loss(univip_inputs(instance=24), None)
    assert all(
        part in str(err.value)
        for part in ('instance crops (UniVIPViews.instance_size)', '24x24 px',
                     '16x16 px patches', '32x32 px'))
    with pytest.raises(ValueError, match=r'scene views \(UniVIPViews'):
        model.loss(univip_inputs(scene=72), None)


def test_grid_helpers():
    vit = MODELS.build(
        dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=32,
                num_layers=1,
                num_heads=2,
                feedforward_channels=64),
            img_size=64,
            patch_size=16))
    images = torch.randn(2, 3, 64, 96)
    cls_token = vit(images)[-1]
    assert cls_token.shape == (2, 32)
    assert global_feature(cls_token) is cls_token
    grid = return_grid(vit)(images)[-1]
    assert grid.shape == (2, 32, 4, 6)
    torch.testing.assert_close(global_feature(grid), grid.mean((2, 3)))
    vit.out_type = 'raw'
    with pytest.raises(ValueError, match="out_type='featmap' or"):
        global_feature(vit(images)[-1])
    convnext = MODELS.build(
        dict(type='ConvNeXt', arch=dict(depths=[1] * 4, channels=[8] * 4)))
    assert convnext(images)[-1].shape == (2, 8)  # pooled by default
    assert return_grid(convnext)(images)[-1].shape == (2, 8, 2, 3)


@pytest.mark.parametrize('path', FULL_SIZE, ids=osp.basename)
def test_full_size_configs_build(path):
    """Each full-size config builds its model (no weights), on the grid and
    with the recipe it states."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    MessageHub.get_current_instance().update_info('max_iters', 1)
    model = MODELS.build(cfg.model)
    hooks = [h.type for h in cfg.custom_hooks]
    assert 'MomentumTargetHook' not in hooks and 'RandomStateHook' in hooks
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.weight_decay) == ('AdamW', 0.1)
    assert optimizer.lr == pytest.approx(
        1.5e-4 * cfg.auto_scale_lr.base_batch_size / 256)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.end, cosine.begin, cosine.end) == (40, 40,
                                                      cfg.train_cfg.max_epochs)
    assert warmup.convert_to_iter_based and cosine.convert_to_iter_based
    model.eval()  # MoCoV3ViT.train() returns None
    with torch.no_grad():
        out = model.backbone(torch.zeros(1, 3, 224, 224))[-1]
    if cfg.model.type == 'MosRep':
        assert out.shape[-2:] == (224 * cfg.model.mosaic.spatial_scale, ) * 2
    else:  # UniVIP: the cls token, 96 px instances fit the patches
        assert out.shape == (1, 384)
        check_patch_fit(model.backbone, torch.zeros(1, 3, 96, 96), 'x')
