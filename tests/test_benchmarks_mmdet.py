"""configs/benchmarks/mmdetection/: MoCo's protocol, checkpoint loading,
training on CPU and the absence of the upstream mmselfsup bugs."""
import ast
import glob
import math
import os.path as osp
import shutil

import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm

from helpers import ROOT, save_r50_checkpoint

CONFIGS = osp.join(ROOT, 'configs/benchmarks/mmdetection')
C4_1X = 'coco/mask-rcnn_r50-c4_ms-1x_coco.py'
C4_2X = 'coco/mask-rcnn_r50-c4_ms-2x_coco.py'
FPN_1X = 'coco/mask-rcnn_r50_fpn_ms-1x_coco.py'
FPN_2X = 'coco/mask-rcnn_r50_fpn_ms-2x_coco.py'
VOC = 'voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py'
C4 = [C4_1X, C4_2X, VOC]
ALL = [C4_1X, C4_2X, FPN_1X, FPN_2X, VOC]
DATA = osp.join(ROOT, 'tests/data/coco_voc_mini')
PYTORCH_MEAN = [123.675, 116.28, 103.53]
PYTORCH_STD = [58.395, 57.12, 57.375]


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Every test here runs in mmdet's default scope."""
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'ediy_r50.pth')
    return path, save_r50_checkpoint(path, seed=1)


def load_config(name: str, monkeypatch, pretrained='unused.pth') -> Config:
    monkeypatch.setenv('PRETRAINED', pretrained)
    return Config.fromfile(osp.join(CONFIGS, name))


def assert_pytorch_normalisation(model, image: torch.Tensor) -> None:
    """The model itself turns a BGR uint8 image into torchvision's input."""
    batch = dict(inputs=[image], data_samples=[DetDataSample()])
    inputs = model.data_preprocessor(batch, False)['inputs'][0]
    height, width = image.shape[1:]
    mean = torch.tensor(PYTORCH_MEAN).view(3, 1, 1)
    std = torch.tensor(PYTORCH_STD).view(3, 1, 1)
    expected = (image.flip(0).float() - mean) / std
    torch.testing.assert_close(inputs[:, :height, :width], expected)


def test_mmdet_plugins_do_not_import_mmpretrain():
    files = glob.glob(osp.join(ROOT, 'ediy_mm/mmdet_plugins/*.py'))
    assert len(files) == 2
    for path in files:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or '']
            else:
                continue
            assert not any(n.startswith('mmpretrain') for n in names), path


@pytest.mark.parametrize('name', ALL)
def test_protocol(name, monkeypatch):
    cfg = load_config(name, monkeypatch)
    assert 'data_preprocessor' not in cfg  # upstream's VOC bug
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.mean == PYTORCH_MEAN
    assert preprocessor.std == PYTORCH_STD
    assert preprocessor.bgr_to_rgb is True
    backbone = cfg.model.backbone
    assert backbone.frozen_stages == -1 and backbone.norm_eval is False
    assert backbone.norm_cfg.type == 'SyncBN' and backbone.style == 'pytorch'
    dataset = cfg.train_dataloader.dataset
    if name == VOC:  # VOC2007 + VOC2012
        dataset = dataset.datasets[0]
    resize = dataset.pipeline[2]
    assert resize.type == 'RandomChoiceResize' and len(resize.scales) > 5
    if name in C4:
        head = cfg.model.roi_head.shared_head
        assert head.type == 'ExtraNormResLayer' and head.norm_eval is False
        assert head.norm_cfg.type == 'SyncBN'
    else:
        assert cfg.model.neck.norm_cfg.type == 'SyncBN'
        assert cfg.model.roi_head.bbox_head.norm_cfg.type == 'SyncBN'
        assert cfg.model.roi_head.mask_head.norm_cfg.type == 'SyncBN'


@pytest.mark.parametrize('name,epochs,steps', [(C4_1X, 12, [8, 11]),
                                               (C4_2X, 24, [16, 22]),
                                               (FPN_1X, 12, [8, 11]),
                                               (FPN_2X, 24, [16, 22])])
def test_coco_schedules(name, epochs, steps, monkeypatch):
    cfg = load_config(name, monkeypatch)
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'
    assert cfg.train_cfg.max_epochs == epochs
    step = cfg.param_scheduler[-1]
    assert step.type == 'MultiStepLR' and step.by_epoch
    assert step.milestones == steps and step.end == epochs


def test_voc_schedule_and_metric(monkeypatch):
    cfg = load_config(VOC, monkeypatch)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == 24000
    step = cfg.param_scheduler[-1]
    assert step.milestones == [18000, 22000] and step.end == 24000
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == 'VOCMetric'
        assert {0.5, 0.75} <= set(evaluator.iou_thrs)
        assert len(evaluator.iou_thrs) == 10  # AP: mean over 0.50:0.95


@pytest.mark.parametrize('name', [C4_1X, FPN_1X, VOC])
def test_checkpoint_loads_into_backbone_and_res5_head(name, checkpoint,
                                                      monkeypatch):
    path, expected = checkpoint
    cfg = load_config(name, monkeypatch, pretrained=path)
    model = MODELS.build(cfg.model)
    model.init_weights()

    loaded = dict(model.backbone.state_dict())
    if name in C4:
        head = model.roi_head.shared_head.state_dict()
        assert not set(loaded) & set(head)
        loaded.update(head)
        # The extra norm is not in a ResNet checkpoint.
        assert torch.equal(loaded.pop('norm.weight'), torch.ones(2048))
        for key in ('bias', 'running_mean', 'running_var',
                    'num_batches_tracked'):
            loaded.pop(f'norm.{key}')
    assert sorted(loaded) == sorted(expected)
    for key, value in loaded.items():
        assert torch.equal(value, expected[key]), key

    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert all(p.requires_grad for p in model.backbone.parameters())
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    assert_pytorch_normalisation(model, image)


class LossRecorder(Hook):
    """Keeps the parsed losses of every training iteration."""

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch, outputs):
        self.losses.append({k: float(v) for k, v in outputs.items()})


def tiny_coco_run(cfg: Config, work_dir: str) -> Config:
    """Shrink a COCO config to two iterations on the fixture at 320 px."""
    dataset = cfg.train_dataloader.dataset
    dataset.update(
        data_root=osp.join(DATA, 'coco'),
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='images/train2017/'))
    dataset.pipeline[2].scales = [(320, 256), (320, 288)]
    cfg.train_dataloader.update(
        batch_size=1, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset = dict(
        type='RepeatDataset', times=2, dataset=dataset)
    train_cfg = cfg.model.train_cfg
    train_cfg.rpn.sampler.num = 64
    train_cfg.rpn_proposal.update(nms_pre=300, max_per_img=64)
    train_cfg.rcnn.sampler.num = 8
    cfg.train_cfg.max_epochs = 1
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir
    return cfg


@pytest.mark.parametrize('name', [C4_1X, FPN_1X])
def test_two_training_iterations_on_cpu(name, checkpoint, tmp_path,
                                        monkeypatch):
    cfg = tiny_coco_run(
        load_config(name, monkeypatch, pretrained=checkpoint[0]),
        str(tmp_path))
    runner = Runner.from_cfg(cfg)
    recorder = LossRecorder()
    runner.register_hook(recorder)
    runner.train()

    assert len(recorder.losses) == 2
    for losses in recorder.losses:
        for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                    'loss_mask', 'loss'):
            assert math.isfinite(losses[key]), (key, losses)
    assert recorder.losses[0]['loss_mask'] > 0


@pytest.fixture
def voc_devkit(tmp_path):
    """VOC2007 and VOC2012 folders made from the fixture's image 000001."""
    for year in ('VOC2007', 'VOC2012'):
        root = tmp_path / year
        shutil.copytree(osp.join(DATA, 'pascal'), root)
        splits = ['trainval', 'test'] if year == 'VOC2007' else ['trainval']
        for split in splits:
            (root / 'ImageSets/Main' / f'{split}.txt').write_text('000001\n')
    return f'{tmp_path}/'


def test_voc_builds_model_and_pipeline(voc_devkit, monkeypatch):
    cfg = load_config(VOC, monkeypatch)
    for dataset in cfg.train_dataloader.dataset.datasets:
        dataset.data_root = voc_devkit
    cfg.val_dataloader.dataset.data_root = voc_devkit

    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(train) == 2  # VOC2007 + VOC2012 trainval
    sample = train[0]
    assert min(sample['inputs'].shape[1:]) in range(480, 801, 32)
    instances = sample['data_samples'].gt_instances
    assert sorted(train.metainfo['classes'][i]
                  for i in instances.labels) == ['dog', 'person']
    test = DATASETS.build(cfg.val_dataloader.dataset)
    assert min(test[0]['inputs'].shape[1:]) == 800

    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'FasterRCNN'
    assert type(model.roi_head.shared_head).__name__ == 'ExtraNormResLayer'
    assert model.roi_head.bbox_head.num_classes == 20
    assert_pytorch_normalisation(model, sample['inputs'])
