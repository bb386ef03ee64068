"""The small-image recipe (``configs/*/*_resnet18-cifarstem_tinyin-64px.py``):
each config trains a few iterations through tools/train.py on real photos
(E-DIY with the small-image BYOL as its teacher), its departures from the
ImageNet recipe are the documented ones, and every preset of the
comparison (the GPU study's included) parses and builds every run config
without training."""
import glob
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from ediy_mm.analysis import list_images, load_backbone, write_instance_crops
from ediy_mm.analysis.compare import (PRESETS, RECIPES, CompareSettings,
                                      build_run_config, resolve_methods)
from ediy_mm.analysis.compare.configs import view_sizes
from helpers import ROOT, load_tool, run_command, run_train

SMALL = {
    name: osp.join(ROOT, path)
    for name, path in RECIPES['small-image'].items()
}
COCO = osp.join(ROOT, 'tests/data/coco_voc_mini/coco')
#: A few iterations of batch 4 at 64 px on a ResNet-18 of width 16.
TINY = [
    'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
    'train_dataloader.dataset.repeat=1', 'train_cfg.max_epochs=1',
    'default_hooks.logger.interval=1', 'model.backbone.base_channels=16',
    'model.backbone.stem_channels=16', 'model.neck.in_channels=128'
]


def losses(work_dir):
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line)['loss'] for line in f if '"loss"' in line]


@pytest.fixture(scope='module')
def small_byol(tmp_path_factory, photos_dir):
    """The small-image BYOL after a few iterations (E-DIY's teacher)."""
    work_dir = str(tmp_path_factory.mktemp('small_byol'))
    run_train(SMALL['byol'], work_dir,
              f'train_dataloader.dataset.data_root={photos_dir}', *TINY)
    assert losses(work_dir) and all(map(math.isfinite, losses(work_dir)))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test_byol_ends_in_4x4_regions_at_64px(small_byol):
    backbone = Config.fromfile(SMALL['byol']).model.backbone
    model = load_backbone(
        small_byol,
        backbone=dict(backbone, base_channels=16, stem_channels=16))
    images = torch.rand(2, 3, 64, 64)
    assert model(images).shape == (2, 128, 4, 4)
    # what the comparison evaluates: the training config saved in the file
    assert torch.equal(load_backbone(small_byol)(images), model(images))


@pytest.mark.parametrize('name',
                         ['ediy', 'ediy-teacherfree', 'mosrep', 'univip'])
def test_config_trains_a_few_iterations(name, tmp_path, photos_dir, small_byol,
                                        photo_proposals):
    options = [f'train_dataloader.dataset.data_root={photos_dir}', *TINY]
    if name == 'ediy':
        options += [
            f'model.teacher.checkpoint={small_byol}',
            'model.teacher.backbone.base_channels=16',
            'model.teacher.backbone.stem_channels=16'
        ]
    if name == 'univip':
        options.append(
            f'train_dataloader.dataset.proposal_file={photo_proposals}')
    out = run_train(SMALL[name], str(tmp_path), *options)
    if name == 'ediy':
        assert 'TeacherHook: teacher' in out
    assert losses(str(tmp_path)) and all(
        map(math.isfinite, losses(str(tmp_path))))
    assert osp.exists(osp.join(str(tmp_path), 'epoch_1.pth'))


def test_departures_from_the_imagenet_recipe():
    for name, path in SMALL.items():
        cfg = Config.fromfile(path)
        assert cfg.model.backbone.type == 'ResNet_CIFAR', name
        assert tuple(cfg.model.backbone.strides) == (2, 2, 2, 2), name
        pipeline = cfg.train_dataloader.dataset.pipeline
        assert 'GaussianBlur' not in str(pipeline), name
        assert max(view_sizes(pipeline)) == 64, name
        assert cfg.train_dataloader.batch_size == 64, name
        assert cfg.auto_scale_lr.base_batch_size == 64, name
        if name != 'mosrep':  # BYOL's family: LARS as solo-learn's CIFAR
            optimizer = cfg.optim_wrapper.optimizer
            assert (optimizer.type, optimizer.eta) == ('LARS', 0.02), name
            assert optimizer.lr == pytest.approx(1.0 * 64 / 256), name
            assert optimizer.weight_decay == 1e-5, name
    views = Config.fromfile(
        SMALL['byol']).train_dataloader.dataset.pipeline[1].transforms
    solarize = [[t.prob for t in v if t.type == 'Solarize'] for v in views]
    assert solarize == [[], [0.2]]  # the second view only
    ediy = Config.fromfile(SMALL['ediy']).model
    for key in ('type', 'depth', 'strides'):  # cell-by-cell regions
        assert ediy.teacher.backbone[key] == ediy.backbone[key], key
    mosrep = Config.fromfile(SMALL['mosrep'])
    assert mosrep.model.mosaic.spatial_scale == 1 / 16
    assert mosrep.optim_wrapper.optimizer.lr == pytest.approx(0.3 * 64 / 256)


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    """A labelled folder: 3 photos as classes, random crops as images."""
    root = str(tmp_path_factory.mktemp('labelled'))
    write_instance_crops(
        list_images()[:3], root, crops=dict(train=4, val=2), size=64)
    return root


@pytest.mark.parametrize('preset', sorted(PRESETS))
def test_preset_parses_and_builds_every_run_config(preset, labelled, tmp_path):
    tool = load_tool('tools/analysis_tools/compare_methods.py')
    options = vars(
        tool.parse_args(
            ['--preset', preset, '--data', labelled, '--dense', COCO]))
    assert options.pop('preset') == preset
    methods, seeds = options.pop('methods'), options.pop('seeds')
    options.pop('threads'), options.pop('work_dir')
    settings = CompareSettings(**options)
    settings.validate()
    for key, value in PRESETS[preset].options.items():
        assert (seeds if key == 'seeds' else methods if key == 'methods' else
                getattr(settings, key, value)) == value, key
    resolved = resolve_methods(methods, settings.recipe)
    assert all(m['available'] for m in resolved.values()), resolved
    teacher = tmp_path / 'teacher.pth'
    teacher.touch()  # only its existence is checked when building
    for name, entry in resolved.items():
        if entry['config'] is None:
            continue
        assert entry['config'] == SMALL[name]
        cfg = build_run_config(
            entry['config'], settings, 0, str(tmp_path / name), labelled,
            dict(train=labelled, val=labelled),
            str(teacher) if entry['method'].teacher else None,
            'proposals.json')
        loader = cfg.train_dataloader
        assert loader.batch_size == settings.batch_size
        assert max(view_sizes(loader.dataset.pipeline)) == settings.size
        assert loader.num_workers == settings.workers
        assert cfg.train_cfg.max_epochs == settings.epochs
        hooks = [h['type'] for h in cfg.custom_hooks]
        assert ('ChannelsLastHook' in hooks) == settings.channels_last
        assert (cfg.optim_wrapper.type == 'AmpOptimWrapper') == (
            settings.precision == 'bf16')
        if settings.precision == 'bf16':
            assert cfg.optim_wrapper.dtype == 'bfloat16'
        MODELS.build(cfg.model)


def test_gpu_study_script_parses_and_prints_its_usage():
    script = osp.join(ROOT, 'tools/gpu_study.sh')
    run_command(['bash', '-n', script])
    out = run_command(['bash', '-c', f'bash {script} || true'])
    assert 'gpu_study.sh run WHEELS_DIR DATA DENSE' in out
