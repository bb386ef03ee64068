"""MosRep and UniVIP on a CPU-sized ViT/16 and ConvNeXt through the real
Runner: tools/train.py, 2 gloo processes as under tools/dist_train.sh, and the
evaluation tools on the ViT checkpoints (kNN monitor, region diversity,
dense probe, converters, compare_methods next to a ResNet)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import HOOKS, MODELS
from test_compare import SMOKE, labelled  # noqa: F401 (fixture)
from test_knn_monitor import fake_runner, write_folder
from test_univip_training import ITER_CFG as UNIVIP_ITER_CFG

from ediy_mm.analysis import load_backbone
from ediy_mm.analysis.dense_probe import dense_linear_probe, embed_images
from ediy_mm.utils.convert import (extract_backbone, load_state_dict,
                                   to_detectron2, to_torchvision)
from helpers import ROOT, load_tool, run_dist_jobs, run_train

CONFIGS = dict(
    mosrep_vit='configs/mosrep/mosrep_vit-mini-p16_cpu-64px_photos.py',
    mosrep_convnext='configs/mosrep/mosrep_convnext-mini_cpu-64px_photos.py',
    univip_vit='configs/univip/univip_vit-mini-p16_cpu-64px_photos.py',
    univip_convnext='configs/univip/univip_convnext-mini_cpu-64px_photos.py')
#: Two iterations of two images per process (test_univip_training's run),
#: a checkpoint after each.
ITER_CFG = UNIVIP_ITER_CFG + (
    'train_dataloader = dict(batch_size=2, num_workers=0)\n')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def iter_config(tmp_path, name):
    path = tmp_path / f'{name}_iter.py'
    path.write_text(ITER_CFG.format(base=osp.join(ROOT, CONFIGS[name])))
    return str(path)


def data_options(name, photos_dir, proposals):
    options = [
        f'train_dataloader.dataset.data_root={photos_dir}',
        'train_dataloader.dataset.repeat=1'
    ]
    if name.startswith('univip'):
        options.append(f'train_dataloader.dataset.proposal_file={proposals}')
    return options


def train_py(config, work_dir, options):
    """tools/train.py; the path of its last checkpoint."""
    run_train(config, work_dir, *options)
    return str(work_dir / 'iter_2.pth')


@pytest.fixture(scope='module')
def runs(tmp_path_factory, photos_dir, photo_proposals):
    """tools/train.py on each CPU config: two iterations; the checkpoints
    by name."""
    tmp = tmp_path_factory.mktemp('backbone_runs')
    checkpoints = {}
    for name in CONFIGS:
        checkpoints[name] = train_py(
            iter_config(tmp, name), tmp / name,
            data_options(name, photos_dir, photo_proposals))
    return checkpoints


def test_train_py(runs):
    for name, path in runs.items():
        ckpt = torch.load(path, weights_only=False)
        assert ckpt['meta']['iter'] == 2, name
        state = ckpt['state_dict']
        online = [k for k in state if k.startswith('backbone.')]
        assert online and all(f'target_net.module.0.{k[9:]}' in state
                              for k in online), name
        # the target moved once per step: it left the online weights
        assert any(
            not torch.equal(state[k], state[f'target_net.module.0.{k[9:]}'])
            for k in online), name


@pytest.fixture(scope='module')
def dist_runs(tmp_path_factory, photos_dir, photo_proposals):
    """Every config, 2 processes, one launch."""
    folder = tmp_path_factory.mktemp('backbones_dist')
    jobs = {
        name: [
            iter_config(folder, name), '--work-dir',
            str(folder / name), '--cfg-options',
            *data_options(name, photos_dir, photo_proposals)
        ]
        for name in CONFIGS
    }
    return folder, run_dist_jobs(jobs, folder)


@pytest.mark.parametrize('name', list(CONFIGS))
def test_two_gloo_processes(dist_runs, name):
    """2 processes as under tools/dist_train.sh, 2 iterations: one model on
    both (a parameter without gradient would fail the second DDP step)."""
    folder, runs = dist_runs
    assert 'Iter(train) [2/2]' in runs[name]
    ranks = [torch.load(folder / name / f'rank{r}.pth') for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key


def test_analysis_tools_on_vit_checkpoints(runs, photos_dir, tmp_path):
    """The architecture is read from the training config saved in the
    checkpoint; the ViT returns its patch grid whether it trained on it
    (MosRep) or on its cls token (UniVIP)."""
    for name in ('mosrep_vit', 'univip_vit'):
        extractor = load_backbone(runs[name])
        saved = load_state_dict(runs[name])
        for key, value in extractor.backbone.state_dict().items():
            assert torch.equal(value, saved[f'backbone.{key}']), (name, key)
        maps = extractor(torch.rand(2, 3, 64, 96))
        assert maps.shape == (2, 64, 4, 6), name

    report = load_tool('tools/analysis_tools/region_diversity.py').main([
        f'vit={runs["univip_vit"]}', f'convnext={runs["mosrep_convnext"]}',
        '--images', photos_dir, '--limit', '3', '--size', '64', '--out-dir',
        str(tmp_path / 'diversity')
    ])
    assert report['regions'] == 16  # the ViT's 4x4 patch grid at 64 px
    assert 'vit' in report['table'] and 'convnext' in report['table']

    # An extracted backbone has no config: give the training config.
    extracted = tmp_path / 'vit_backbone.pth'
    torch.save(
        extract_backbone(load_state_dict(runs['univip_vit'])).state_dict,
        extracted)
    config = Config.fromfile(osp.join(ROOT, CONFIGS['univip_vit']))
    backbone = MODELS.build(config.model.backbone)
    backbone.load_state_dict(
        torch.load(extracted, weights_only=True), strict=True)
    from_file = load_backbone(str(extracted), backbone=config.model.backbone)
    assert from_file(torch.rand(1, 3, 64, 64)).shape == (1, 64, 4, 4)
    with pytest.raises(ValueError, match='holds no ResNet.*--config'):
        load_backbone(str(extracted))


def test_converters_refuse_a_vit_by_name(runs):
    state = load_state_dict(runs['mosrep_vit'])
    for convert, target in ((to_torchvision, 'torchvision'), (to_detectron2,
                                                              'detectron2')):
        with pytest.raises(ValueError) as err:
            convert(state)
        message = str(err.value)
        assert all(
            part in message for part in ('not a ResNet', 'patch_embed', target,
                                         'extract_backbone.py')), message


def test_dense_probe_on_vit_patch_grids(runs):
    """The dense probe fits its 1x1 classifier on the ViT's patch grid:
    images whose left half is red are segmented from 4x4 patch maps."""
    extractor = load_backbone(runs['univip_vit'])
    g = torch.Generator().manual_seed(0)
    images = torch.rand(12, 3, 64, 64, generator=g) * 0.3
    images[:, 0, :, :32] = 1.
    masks = torch.zeros(12, 16, 16, dtype=torch.uint8)
    masks[:, :, :8] = 1
    maps = embed_images(extractor, images, batch_size=6, pool=False)
    assert maps.shape == (12, 64, 4, 4)
    result = dense_linear_probe(
        maps[:8],
        masks[:8],
        maps[8:],
        masks[8:], ('background', 'red'),
        weight_decay=1e-3)
    assert result['miou'] > result['baseline_miou']


def test_knn_monitor_on_cls_token_and_patch_grid(runs, tmp_path):
    """The kNN monitor embeds with the online backbone as it trains: the
    cls token of UniVIP's ViT, the averaged patch grid of MosRep's."""
    train = write_folder(tmp_path / 'train', 3)
    val = write_folder(tmp_path / 'val', 2)
    for name, out_type in (('univip_vit', 'cls_token'), ('mosrep_vit',
                                                         'featmap')):
        model = MODELS.build(
            Config.fromfile(osp.join(ROOT, CONFIGS[name])).model)
        model.backbone.load_state_dict(
            extract_backbone(load_state_dict(runs[name])).state_dict)
        assert model.backbone.out_type == out_type
        hook = HOOKS.build(
            dict(
                type='KNNMonitorHook',
                train_root=train,
                val_root=val,
                image_size=32,
                batch_size=4,
                num_workers=0,
                k=3))
        runner = fake_runner(f'knn_{name}', tmp_path / name)
        runner.model = model
        hook.before_train(runner)
        metrics = hook.evaluate(runner, epoch=1)
        assert 0 <= metrics['knn/top1'] <= metrics['knn/top5'] == 100
        model.eval()
        feats, _, _ = hook._embed(model, 'val')
        data = next(iter(hook.loaders['val']))
        inputs = model.data_preprocessor(data, False)['inputs']
        with torch.no_grad():
            out = model.backbone(inputs)[-1]
        expected = out if out.dim() == 2 else out.mean((2, 3))
        torch.testing.assert_close(
            feats[:len(expected)],
            torch.nn.functional.normalize(expected, dim=1))


def test_compare_vit_beside_resnet(tmp_path, labelled):  # noqa: F811
    """compare_methods.py at the smoke scale with the ViT MosRep config
    beside BYOL's ResNet-18: the random-init anchor is the first config's
    ViT, every metric of every run is finite, the ViT's kNN monitor ran."""
    vit = osp.join(ROOT, CONFIGS['mosrep_vit'])
    tool = load_tool('tools/analysis_tools/compare_methods.py')
    threads = torch.get_num_threads()
    result = tool.main([
        '--data', labelled, '--work-dir',
        str(tmp_path), *SMOKE, '--methods', 'random-init', f'mosrep-vit={vit}',
        'byol'
    ])
    torch.set_num_threads(threads)
    runs = {r['method']: r for r in result['runs']}
    assert set(runs) == {'random-init', 'mosrep-vit', 'byol'}
    for name, run in runs.items():
        assert run['status'] == 'ok', (name, run.get('error'))
        assert all(
            torch.isfinite(torch.tensor(v))
            for v in run['metrics'].values()), name
    assert [e for e, _ in runs['mosrep-vit']['knn_curve']] == [0, 1, 2]
