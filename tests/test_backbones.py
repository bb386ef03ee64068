"""E-DIY beyond ResNet: ViT (cls token or pooled grid), Swin, ConvNeXt and
timm backbones, and the choice of regions when the teacher's grid differs
from the online grid."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

from ediy_mm.analysis.grid_mismatch import GRID_OPTIONS, METRICS, _parent
from ediy_mm.engine import TeacherHook
from ediy_mm.models import ClsAndMapViT, check_region_grids
from helpers import BACKBONE, PRED, ROOT, load_tool

TINY_VIT = dict(
    arch=dict(
        embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
    img_size=64,
    patch_size=16)

#: Tiny backbones, the channels of their last map, the neck's global input
#: and their output stride.
BACKBONES = {
    'vit-cls': (dict(type='ClsAndMapViT', **TINY_VIT), 32, 'cls_token', 16),
    'mocov3-vit-cls':
    (dict(type='ClsAndMapMoCoV3ViT', stop_grad_conv1=True,
          **TINY_VIT), 32, 'cls_token', 16),
    'vit-pooled':
    (dict(type='VisionTransformer', out_type='featmap',
          **TINY_VIT), 32, 'map', 16),
    'swin': (dict(
        type='SwinTransformer',
        arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
        img_size=64,
        window_size=2,
        out_indices=(3, )), 128, 'map', 32),
    'convnext': (dict(
        type='ConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
        out_indices=(3, ),
        gap_before_final_norm=False), 64, 'map', 32),
    'timm-resnet': (dict(
        type='TIMMBackbone',
        model_name='resnet10t',
        features_only=True,
        out_indices=(4, )), 512, 'map', 32),
}


def build(backbone='vit-cls', region_source='target', teacher=None, **kwargs):
    """A tiny E-DIY on one of :data:`BACKBONES`, moved by the test."""
    cfg, channels, global_input, _ = BACKBONES[backbone]
    if cfg['type'] == 'TIMMBackbone':
        pytest.importorskip(
            'timm',
            reason='timm is not installed (optional extra: pip '
            'install "ediy_mm[timm]")')
    model = MODELS.build(
        dict(
            type='EDIY',
            backbone=cfg,
            neck=dict(
                type='EDIYNeck',
                in_channels=channels,
                hid_channels=64,
                out_channels=32,
                norm_cfg=dict(type='BN1d'),
                global_input=global_input),
            head=dict(type='EDIYHead', predictor=PRED),
            region_source=region_source,
            teacher=teacher,
            **kwargs))
    # what DDP will wait for: the Runner wraps the model before
    # init_weights()
    model.trainable_when_wrapped = [
        n for n, p in model.named_parameters() if p.requires_grad
    ]
    model.init_weights()
    return model


def views(height, width, batch=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, height, width, generator=gen)] * 2


def test_cls_and_map_vit_returns_both_and_loads_mmpretrain_weights():
    vit = ClsAndMapViT(**TINY_VIT)
    cls_token, grid = vit(torch.randn(2, 3, 96, 64))  # non-square
    assert cls_token.shape == (2, 32) and grid.shape == (2, 32, 6, 4)
    plain = VisionTransformer(out_type='featmap', **TINY_VIT)
    plain.load_state_dict(vit.state_dict())  # same names and shapes
    assert torch.equal(
        plain(torch.ones(1, 3, 64, 64))[0],
        vit(torch.ones(1, 3, 64, 64))[1])
    with pytest.raises(ValueError, match="needs out_type='featmap'"):
        ClsAndMapViT(out_type='cls_token', **TINY_VIT)


def test_cls_token_input_needs_a_cls_token():
    neck = MODELS.build(
        dict(
            type='EDIYNeck',
            in_channels=8,
            hid_channels=16,
            out_channels=8,
            norm_cfg=dict(type='BN1d'),
            global_input='cls_token'))
    with pytest.raises(ValueError, match='ClsAndMapViT'):
        neck((torch.randn(2, 8, 3, 3), ))


@pytest.mark.parametrize('name', list(BACKBONES))
def test_teacher_free_trains_every_backbone(name):
    """Teacher-free E-DIY on each backbone, on non-square views: the loss
    terms are finite and every parameter trainable when DDP wraps the model
    gets a gradient (DDP needs no find_unused_parameters)."""
    model = build(name)
    model.train()
    stride = BACKBONES[name][3]
    inputs = views(4 * stride, 2 * stride)
    feats = model.features(inputs)
    assert feats.online_local[0].shape[-2:] == (4, 2)
    assert feats.region_maps[0].shape[-2:] == (4, 2)
    losses = model.loss(inputs, None)
    assert set(losses) == {'loss_byol', 'loss_rdem', 'loss_riem'}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    params = dict(model.named_parameters())
    missing = [
        n for n in model.trainable_when_wrapped if params[n].grad is None
    ]
    assert not missing


def r18_teacher(path):
    return dict(checkpoint=path, backbone=dict(BACKBONE, out_indices=(3, )))


def fake_runner(model, size=64):
    sample = dict(inputs=[torch.rand(3, size, size)] * 2)
    return SimpleNamespace(
        model=model,
        train_dataloader=SimpleNamespace(dataset=[sample]),
        logger=MMLogger.get_current_instance())


def test_grid_mismatch_fails_before_the_first_iteration(teacher_ckpt):
    """A ViT/16 (8x8 at 128 px) with a ResNet-18 teacher (4x4)."""
    model = build(teacher=r18_teacher(teacher_ckpt), region_source='teacher')
    with pytest.raises(ValueError) as err:
        TeacherHook().before_train(fake_runner(model, 128))
    message = str(err.value)
    assert 'On a 128x128 px image the teacher map is a (4, 4) grid but ' \
        'the online map is a (8, 8) grid' in message
    for option in ("region_grid='interpolate'", "region_grid='pool'",
                   'strides=(1, 2, 2, 1)'):
        assert option in message
    with pytest.raises(ValueError, match=r'\(4, 4\) grid .* \(8, 8\) grid'):
        model.loss(views(128, 128), None)  # the same error without the hook
    # region_grid='pool' needs whole blocks: at 112 px the online grid is
    # 7x7, the teacher's 4x4 (7 cells do not split into 4 equal blocks)
    model = build(
        teacher=r18_teacher(teacher_ckpt),
        region_source='teacher',
        region_grid='pool')
    pooled = r"online \(7, 7\) grid .* teacher \(4, 4\) grid .*" \
        "region_grid='interpolate'"
    with pytest.raises(ValueError, match=pooled):
        TeacherHook().before_train(fake_runner(model, 112))
    with pytest.raises(ValueError, match=pooled):
        model.loss(views(112, 112), None)


@pytest.mark.parametrize('region_grid,local', [('interpolate', (8, 6)),
                                               ('pool', (4, 3))])
def test_grid_options(teacher_ckpt, region_grid, local):
    model = build(
        teacher=r18_teacher(teacher_ckpt),
        region_source='teacher',
        region_grid=region_grid)
    TeacherHook().before_train(fake_runner(model, 128))
    model.train()
    inputs = views(128, 96)  # online 8x6, teacher 4x3
    feats = model.features(inputs)
    assert feats.online_local[0].shape[-2:] == local
    assert feats.target_local[0].shape[-2:] == local
    assert feats.region_maps[0].shape[-2:] == local
    if region_grid == 'interpolate':
        coarse = model.teacher(inputs[0])
        expected = torch.nn.functional.interpolate(
            coarse, size=local, mode='bilinear', align_corners=False)
        assert torch.allclose(feats.region_maps[0], expected)
    else:  # each region is the mean of a 2x2 block of online cells
        grid = model.backbone(inputs[0])
        pooled = torch.nn.functional.avg_pool2d(grid[-1], 2)
        expected = model.neck.local_projector(
            (pooled.permute(0, 2, 3, 1).reshape(-1, 32), ))[0]
        assert torch.allclose(
            feats.online_local[0].permute(0, 2, 3, 1).reshape(-1, 32),
            expected,
            atol=1e-5)
    sum(model.loss(inputs, None).values()).backward()


def test_check_region_grids():
    check_region_grids((7, 7), (7, 7), None)
    check_region_grids((7, 7), (14, 14), 'interpolate')
    check_region_grids((7, 7), (14, 14), 'pool')
    check_region_grids((14, 14), (7, 7), 'interpolate')
    check_region_grids((7, 4), (14, 12), 'pool')
    for teacher, online in (((14, 14), (7, 7)), ((4, 4), (14, 14)),
                            ((7, 5), (14, 14))):
        with pytest.raises(ValueError, match='multiple of the teacher'):
            check_region_grids(teacher, online, 'pool')
    neck = MODELS.build(
        dict(type='EDIYNeck', in_channels=8, hid_channels=8, out_channels=4))
    grid = torch.zeros(1, 8, 14, 14)
    with pytest.raises(ValueError, match=r'\(4, 4\) does not split'):
        neck((grid, ), with_global=False, local_grid=(4, 4))
    with pytest.raises(ValueError, match=r'\(7, 7\) grid .* \(14, 14\)'):
        check_region_grids((7, 7), (14, 14), None)
    with pytest.raises(ValueError, match='region_grid must be one of'):
        build(region_grid='nearest')


FULL_SIZE = {
    name: osp.join(ROOT, 'configs/ediy', name)
    for name in (
        'ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py',
        'ediy-teacherfree_vit-small-p16_16xb256-amp-coslr-300e_in1k.py',
        'ediy_vit-base-p16_16xb256-amp-coslr-300e_in1k.py',
        'ediy_swin-tiny_16xb256-amp-coslr-300e_in1k.py',
        'ediy_convnext-tiny_16xb256-amp-coslr-300e_in1k.py')
}


@pytest.mark.parametrize('name', list(FULL_SIZE))
def test_full_size_configs(name):
    """MoCo v3's ViT recipe, and grids that match or are reconciled: the
    ViT/16 grid is twice as fine as the ResNet-50 teacher's (14x14 and 7x7
    at 224 px), Swin-T's and ConvNeXt-T's are the teacher's."""
    cfg = Config.fromfile(FULL_SIZE[name])
    optimizer = cfg.optim_wrapper.optimizer
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert (optimizer.type, optimizer.lr,
            optimizer.weight_decay) == ('AdamW', 2.4e-3, 0.1)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.end, cosine.begin, cosine.end) == (40, 40, 300)
    assert cosine.convert_to_iter_based
    assert cfg.train_dataloader.batch_size == 256
    assert cfg.find_unused_parameters is False
    hooks = [h.type for h in cfg.custom_hooks]
    assert 'TeacherHook' in hooks and 'MomentumTargetHook' not in hooks
    assert cfg.model.neck.global_input == ('cls_token'
                                           if 'vit' in name else 'map')
    # the backbones only: test_configs.py builds the whole models
    size = 224 if 'swin' in name else 96  # Swin-T: a 7x7 window at 224
    probe = torch.zeros(1, 3, size, size)
    stride = 16 if 'vit' in name else 32
    backbone = MODELS.build(cfg.model.backbone)
    backbone.eval()  # mmpretrain's train() overrides return None
    with torch.no_grad():
        online = backbone(probe)
        assert online[-1].shape[-2:] == (size // stride, size // stride)
        if 'vit' in name:  # the cls token before the grid
            assert online[-2].shape == (1, cfg.model.neck.in_channels)
        if cfg.model.get('teacher'):
            teacher = MODELS.build(cfg.model.teacher.backbone)
            teacher.eval()
            grid = teacher(probe)[-1].shape[-2:]
            assert grid == (size // 32, size // 32)
            check_region_grids(grid, online[-1].shape[-2:],
                               cfg.model.region_grid)


def test_grid_mismatch_tool(photos_dir, capsys):
    """tools/analysis_tools/grid_mismatch.py on two photos at 64 px (online
    4x4, teacher 2x2): the reference agrees with itself, the pooled
    choices are read back on the online grid as 2x2 blocks."""
    assert _parent(
        (4, 4),
        (2, 2)).tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]
    results = load_tool('tools/analysis_tools/grid_mismatch.py').main([
        '--depth', '18', '--images', photos_dir, '--limit', '2', '--size', '64'
    ])
    assert list(results) == list(GRID_OPTIONS)
    assert results['same-stride']['riem_agree'] == (1., 0.)
    assert results['same-stride']['rdem_agree'] == (1., 0.)
    for values in results.values():
        assert set(values) == set(METRICS)
        assert 0 <= values['riem_error_px'][0] <= 64 * 2**0.5
        for key in ('riem_within_cell', 'riem_agree', 'rdem_agree'):
            assert 0 <= values[key][0] <= 1
    assert '| interpolate |' in capsys.readouterr().out
