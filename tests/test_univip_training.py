"""UniVIP end to end: every config builds, the head calls the documented
loss functions, every parameter learns, and the CPU config trains through
tools/train.py and tools/dist_train.sh (2 gloo processes) and resumes
exactly. Proposals come from the proposal tool's library."""
import glob
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import default_collate
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS

import ediy_mm.models.heads.univip_head as univip_head
from helpers import ROOT, load_tool, run_dist_train, run_train

CPU_UNIVIP = osp.join(ROOT,
                      'configs/univip/univip_resnet18_cpu-64px_photos.py')
#: Tiny views (ResNet-18 maps of 1 x 1 for scenes and instances alike) and
#: a ResNet-18 of 16 base channels with 32-d embeddings.
TINY = [
    'train_dataloader.dataset.pipeline.1.scene_size=32',
    'train_dataloader.dataset.pipeline.1.instance_size=16',
    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
    'train_dataloader.dataset.repeat=1', 'model.backbone.base_channels=16',
    'model.backbone.stem_channels=16', 'model.neck.in_channels=128',
    'model.neck.hid_channels=64', 'model.neck.out_channels=32',
    'model.head.predictor.in_channels=32',
    'model.head.predictor.hid_channels=64',
    'model.head.predictor.out_channels=32', 'model.head.embed_dim=32'
]
ITER_CFG = """_base_ = '{base}'
custom_imports = dict(imports=['ediy_mm', 'rank_dump_hook'],
                      allow_failed_imports=False)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=1, max_keep_ckpts=5))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
custom_hooks = _base_.custom_hooks + [dict(type='RankDumpHook')]
"""


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One intra-op thread (the suite shares 2 cores), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def iter_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('univip_cfg') / 'univip_iter.py'
    path.write_text(ITER_CFG.format(base=CPU_UNIVIP))
    return str(path)


def data_options(photos_dir, proposals):
    return [
        f'train_dataloader.dataset.data_root={photos_dir}',
        f'train_dataloader.dataset.proposal_file={proposals}'
    ] + TINY


def cpu_cfg(photos_dir, proposals):
    cfg = Config.fromfile(CPU_UNIVIP)
    for option in data_options(photos_dir, proposals):
        key, value = option.split('=', 1)
        cfg.merge_from_dict({key: DictAction._parse_iterable(value)})
    return cfg


def test_every_config_builds():
    configs = sorted(glob.glob(osp.join(ROOT, 'configs/univip/*.py')))
    assert len(configs) >= 4
    models = {}  # the ImageNet and COCO configs share one model config
    for path in configs:
        cfg = Config.fromfile(path)
        key = repr(cfg.model.to_dict())
        if key not in models:
            models[key] = MODELS.build(cfg.model)
        model = models[key]
        views = TRANSFORMS.build(cfg.train_dataloader.dataset.pipeline[1])
        assert views.num_instances == model.head.num_instances
        assert model.head.loss_weights == dict(
            scene=1., scene_instance=1., instance=1.)
        hooks = [h['type'] for h in cfg.custom_hooks]
        assert 'MomentumTargetHook' not in hooks, path  # no longer needed
    assert len(models) < len(configs)


def test_coco_config_is_orls_recipe():
    """UniVIP's COCO rows share ORL's setting: its public COCO config's
    SGD, warm-up, tau, patches and fp16 (docs/univip.md)."""
    cfg = Config.fromfile(
        osp.join(ROOT,
                 'configs/univip/univip_resnet50_8xb64-coslr-800e_coco.py'))
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper' and wrapper.dtype == 'float16'
    assert wrapper.loss_scale == 'dynamic'
    assert wrapper.optimizer == dict(
        type='SGD', lr=0.4, momentum=0.9, weight_decay=1e-4)
    assert 'paramwise_cfg' not in wrapper  # decay on every parameter
    assert 8 * cfg.train_dataloader.batch_size == 512
    assert cfg.auto_scale_lr.base_batch_size == 512
    assert cfg.train_cfg.max_epochs == 800
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.begin,
            warmup.end) == ('LinearLR', 1e-4, 0, 4)
    assert (cosine.type, cosine.begin, cosine.end, cosine.T_max,
            cosine.eta_min) == ('CosineAnnealingLR', 4, 800, 796, 0.)
    assert warmup.convert_to_iter_based and cosine.convert_to_iter_based
    assert 1 - cfg.model.base_momentum == pytest.approx(0.99)
    views = cfg.train_dataloader.dataset.pipeline[1]
    assert (views.instance_size, views.scene_size) == (96, 224)
    # the optimiser it builds (AmpOptimWrapper needs CUDA: built as the
    # plain wrapper): SGD, weight decay 1e-4 on BN and biases too
    model = MODELS.build(cfg.model)
    sgd = build_optim_wrapper(
        model, dict(type='OptimWrapper',
                    optimizer=wrapper.optimizer)).optimizer
    assert type(sgd) is torch.optim.SGD
    assert {g['weight_decay'] for g in sgd.param_groups} == {1e-4}
    assert sum(len(g['params'])
               for g in sgd.param_groups) == len(list(model.parameters()))
    imagenet = Config.fromfile(
        osp.join(ROOT,
                 'configs/univip/univip_resnet50_16xb256-coslr-200e_in1k.py'))
    assert imagenet.optim_wrapper.optimizer.type == 'LARS'


def batch_of(cfg, size=2):
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return default_collate([dataset[i] for i in range(size)])


def test_head_trains_with_the_documented_losses(photos_dir, photo_proposals,
                                                monkeypatch):
    """A real batch of the CPU config: the head's terms are exactly the
    functions' outputs, and every parameter gets a gradient (so DDP needs
    no find_unused_parameters)."""
    cfg = cpu_cfg(photos_dir, photo_proposals)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    batch = model.data_preprocessor(batch_of(cfg), True)
    assert len(batch['inputs']) == 2 + 2 * 2
    assert batch['data_samples'][0].univip_boxes.shape == (2, 4)

    returned, arguments = {}, {}
    for name in ('scene_loss', 'scene_instance_loss', 'instance_loss'):
        function = getattr(univip_head, name)

        def spy(*args, _name=name, _function=function, **kwargs):
            arguments[_name] = args
            returned[_name] = _function(*args, **kwargs)
            return returned[_name]

        monkeypatch.setattr(univip_head, name, spy)
    target = [p.clone() for p in model.target_net.parameters()]
    losses = model.loss(**batch)
    assert all(  # loss() does not move the target
        torch.equal(a, b)
        for a, b in zip(target, model.target_net.parameters()))
    for term, name in (('scene', 'scene_loss'), ('scene_instance',
                                                 'scene_instance_loss'),
                       ('instance', 'instance_loss')):
        assert torch.equal(losses[f'loss_{term}'], returned[name]), term
    # One instance set, as printed: O online from the instances with view
    # 1's augmentations, T target from the same boxes with view 2's.
    _, instances = model.split_views(batch['inputs'])
    online_o, target_t = arguments['instance_loss'][:2]
    assert online_o.shape == target_t.shape == (2, 2, 32)
    with torch.no_grad():
        expected_t = model._embed(model.target_net, instances[1])
        expected_o = model.head._predict(
            model._embed(model._online(), instances[0]))
    torch.testing.assert_close(target_t, expected_t)
    torch.testing.assert_close(online_o, expected_o)
    assert arguments['scene_instance_loss'][0] is online_o

    sum(losses.values()).backward()
    no_grad = [
        name for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not no_grad
    assert not any(p.requires_grad for p in model.target_net.parameters())

    before = next(model.target_net.parameters()).clone()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.)
    model.momentum_update(0.5)
    assert not torch.equal(before, next(model.target_net.parameters()))

    with pytest.raises(ValueError, match=r'2 scene views \+ 2 x 2'):
        model.loss(batch['inputs'][:4], batch['data_samples'])


def checkpoint(path):
    ckpt = torch.load(path, weights_only=False)
    return ckpt['state_dict'], ckpt['optimizer']['state'], ckpt['meta']


def test_train_then_resume_exactly(tmp_path, photos_dir, photo_proposals,
                                   iter_config):
    options = data_options(photos_dir, photo_proposals)
    run_a, run_b = tmp_path / 'a', tmp_path / 'b'
    run_train(iter_config, run_a, *options)
    assert sorted(p.name for p in run_a.glob('iter_*.pth')) == [
        'iter_1.pth', 'iter_2.pth'
    ]
    # A run that stopped after iteration 1, resumed to iteration 2.
    run_b.mkdir()
    shutil.copy(run_a / 'iter_1.pth', run_b / 'iter_1.pth')
    (run_b / 'last_checkpoint').write_text(str(run_b / 'iter_1.pth'))
    run_train(iter_config, run_b, *options, extra=['--resume'])
    state_a, optim_a, meta_a = checkpoint(run_a / 'iter_2.pth')
    state_b, optim_b, meta_b = checkpoint(run_b / 'iter_2.pth')
    assert meta_a['iter'] == meta_b['iter'] == 2
    assert state_a.keys() == state_b.keys()
    assert any(k.startswith('target_net.') for k in state_a)
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    for index in optim_a:
        for key, value in optim_a[index].items():
            assert torch.equal(value, optim_b[index][key]), (index, key)


def test_two_process_training(tmp_path, photos_dir, photo_proposals,
                              iter_config):
    """tools/dist_train.sh with 2 gloo processes, 2 iterations (DDP would
    fail on the second one if a parameter had no gradient)."""
    work_dir = tmp_path / 'dist'
    run_dist_train(iter_config, work_dir,
                   *data_options(photos_dir, photo_proposals))
    ranks = [torch.load(work_dir / f'rank{r}.pth') for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key


def test_views_picture(tmp_path, photos_dir, photo_proposals):
    tool = load_tool('tools/visualization/univip_views.py')
    rows = tool.main([
        photos_dir, '--proposals', photo_proposals, '--num-images', '2',
        '--num-instances', '2', '--out',
        str(tmp_path / 'views.png')
    ])
    assert osp.getsize(rows[0]['file']) > 10000
    for row in rows:
        boxes = np.asarray(row['boxes'])
        scenes = np.asarray(row['scenes'])
        assert boxes.shape == (2, 4) and row['proposals'] > 0
        overlap = np.concatenate([scenes[:, :2].max(0), scenes[:, 2:].min(0)])
        assert (boxes[:, :2] >= overlap[:2]).all()
        assert (boxes[:, 2:] <= overlap[2:]).all()


def test_dataset_refuses_images_outside_data_root(tmp_path, photo_proposals):
    with pytest.raises(FileNotFoundError, match='not under data_root'):
        DATASETS.build(
            dict(
                type='UniVIPDataset',
                proposal_file=photo_proposals,
                data_root=str(tmp_path),
                pipeline=[]))
