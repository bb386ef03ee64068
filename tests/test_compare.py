"""The method comparison: a CPU smoke run of every stage, restart, budget
hook, report and bad inputs."""
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from test_dense_probe import one_thread  # noqa: F401 (autouse fixture)
from torch.utils.data import TensorDataset

from ediy_mm.analysis import list_images, write_instance_crops
from ediy_mm.analysis.compare import METHODS, CompareSettings, resolve_methods
from ediy_mm.analysis.compare.report import METRICS, format_cell, write_report
from ediy_mm.analysis.compare.training import CLOCK_FILE
from ediy_mm.analysis.probes import (global_collapse, labelled_splits,
                                     linear_probe)
from helpers import ROOT, load_tool

COCO = osp.join(ROOT, 'tests/data/coco_voc_mini/coco')
#: The smoke scale: ResNet-18 at 64 px (2 x 2 regions), 8 pre-training
#: images in one batch, 2 epochs (1 warm-up + cosine) of 1 iteration; one
#: torch thread (two are 10x slower on a busy 2-core machine); the COCO
#: fixture has one train image: no held-out image to choose the dense L2;
#: 2 of the 3 classes as the easy split.
SMOKE = [
    '--size', '64', '--epochs', '2', '--batch-size', '8', '--workers', '0',
    '--dense', COCO, '--dense-size', '64', '--diversity-images', '2',
    '--pretrain-limit', '8', '--threads', '1', '--dense-weight-decay', '1e-4',
    '--easy-classes', '2'
]
#: Trained methods have every metric; the anchor only the probes'.
COST = {k for k, m in METRICS.items() if m.group == 'cost'}


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    """A labelled folder: 3 photos of scikit-image as classes, random crops
    of each as its images (4 train, 2 val)."""
    root = str(tmp_path_factory.mktemp('labelled'))
    write_instance_crops(
        list_images()[:3], root, crops=dict(train=4, val=2), size=64)
    return root


@pytest.fixture(scope='module')
def smoke(labelled, tmp_path_factory):
    """The tool on every available method, once, at the smoke scale."""
    work_dir = str(tmp_path_factory.mktemp('compare'))
    tool = load_tool('tools/analysis_tools/compare_methods.py')
    argv = ['--data', labelled, '--work-dir', work_dir, *SMOKE]
    threads = torch.get_num_threads()
    result = tool.main(argv)
    torch.set_num_threads(threads)
    return dict(tool=tool, argv=argv, work_dir=work_dir, result=result)


def test_smoke_report_holds_every_method_and_metric(smoke):
    result, work_dir = smoke['result'], smoke['work_dir']
    methods = result['methods']
    assert set(methods) == set(METHODS)
    assert {'random-init', 'byol', 'ediy', 'ediy-teacherfree'
            } <= {n
                  for n, m in methods.items() if m['available']}
    runs = {r['method']: r for r in result['runs']}
    assert set(runs) == {n for n, m in methods.items() if m['available']}
    for name, run in runs.items():
        assert run['status'] == 'ok', (name, run.get('error'))
        expected = set(METRICS) - (COST if name == 'random-init' else set())
        assert set(run['metrics']) == expected, name
        assert all(np.isfinite(v) for v in run['metrics'].values()), name
        if name != 'random-init':
            assert run['metrics']['epochs'] == 2
            # KNNMonitorHook before training and after each epoch
            assert [e for e, _ in run['knn_curve']] == [0, 1, 2]
    assert (runs['ediy']['metrics']['dense_miou']
            >= 0)  # the real COCO polygons went through
    with open(osp.join(work_dir, 'report.md')) as f:
        report = f.read()
    assert smoke['argv'][1] in report  # the exact command
    for text in ('torch 2.14.1', 'mmpretrain 1.2.0', 'CPU', 'seeds'):
        assert text in report
    for metric in METRICS.values():
        assert f' {metric.title} |' in report
    for name, method in methods.items():
        if method['available']:
            assert f'| {method["label"]} | 1 |' in report
        else:
            assert f'**{method["label"]}**: not available: ' in report
    for name in ('probes.png', 'knn_curves.png', 'results.csv',
                 'results.json'):
        assert os.path.getsize(osp.join(work_dir, name)) > 0
    # E-DIY's teacher is this comparison's BYOL run
    with open(osp.join(work_dir, 'runs/ediy/seed0/console.log')) as f:
        assert runs['byol']['checkpoint'] in f.read()


def test_restart_keeps_finished_runs_and_refuses_other_settings(smoke):
    work_dir, tool, argv = smoke['work_dir'], smoke['tool'], smoke['argv']

    def stamps():
        return {
            path: os.stat(path).st_mtime_ns
            for path in glob.glob(osp.join(work_dir, 'runs/*/seed0/*'))
            if path.endswith(('.pth', '.json'))
        }

    before = stamps()
    # the same command again: nothing is trained or evaluated again; an
    # evaluation lost (killed while evaluating) is redone, not its training
    os.remove(osp.join(work_dir, 'runs/byol/seed0/evaluation.json'))
    again = tool.main(argv)
    changed = {p for p, t in stamps().items() if before.get(p) != t}
    assert changed == {osp.join(work_dir, 'runs/byol/seed0/evaluation.json')}
    after = {r['method']: r['metrics'] for r in again['runs']}
    for run in smoke['result']['runs']:
        assert after[run['method']] == pytest.approx(run['metrics'])
    # other probe settings: evaluated again, not trained again
    tool.main(argv + '--diversity-images 1 --methods random-init byol'.split())
    changed = {p for p, t in stamps().items() if before.get(p) != t}
    assert changed == {
        osp.join(work_dir, f'runs/{m}/seed0/evaluation.json')
        for m in ('byol', 'random-init')
    }
    with pytest.raises(ValueError, match='--epochs 2 there, 3 now'):
        tool.main(argv + ['--epochs', '3'])


def test_seeds_give_mean_and_std(tmp_path):
    runs = [
        dict(
            method='byol',
            seed=s,
            status='ok',
            metrics=dict(knn_top1=v),
            knn_curve=[[0, 1.0], [1, v]]) for s, v in enumerate((4., 6.))
    ]
    methods = {'byol': dict(label='BYOL', available=True, reason='')}
    files = write_report(str(tmp_path), runs, methods, dict(command='x'))
    with open(files['report']) as f:
        assert '| BYOL | 2 | 5.00 ± 1.41 |' in f.read()
    assert format_cell([], 2) == '–' and format_cell([1.0], 1) == '1.0'


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.linear(inputs).pow(2).mean())


def test_wall_clock_budget_stops_within_the_epoch_with_a_checkpoint(tmp_path):
    from ediy_mm.analysis.compare import training  # noqa: F401 (registers)
    runner = Runner(
        model=_Toy(),
        work_dir=str(tmp_path),
        experiment_name='clock_toy',
        default_scope='mmpretrain',
        train_dataloader=dict(
            dataset=TensorDataset(torch.randn(40, 2)),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4),
        train_cfg=dict(type='StoppableEpochBasedTrainLoop', max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[dict(type='TrainingClockHook', minutes=1e-9)])
    runner.train()
    with open(tmp_path / CLOCK_FILE) as f:
        clock = json.load(f)
    assert clock['stopped_at_deadline'] and clock['iterations'] == 1
    assert clock['iters_per_epoch'] == 10 and len(clock['step_seconds']) == 1
    assert (tmp_path / 'epoch_1.pth').exists()
    meta = _load_checkpoint(str(tmp_path / 'epoch_1.pth'))['meta']
    assert meta['training_seconds'] > 0 and len(meta['step_seconds']) == 1


def test_probes_on_separable_and_collapsed_features():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(20)
    feats = torch.nn.functional.one_hot(labels, 8).float() + 0.1 * torch.randn(
        60, 8, generator=g)
    assert linear_probe(feats[:45], labels[:45], feats[45:], labels[45:],
                        3)['top1'] == 100
    collapsed = global_collapse(torch.ones(10, 8) + 1e-9 * feats[:10])
    assert collapsed['effective_rank'] == pytest.approx(1, abs=1e-3)
    assert collapsed['feature_std'] == pytest.approx(0, abs=1e-3)
    spread = global_collapse(feats)
    assert spread['effective_rank'] > 2.5 and spread['feature_std'] > 0.5


def test_labelled_splits(tmp_path, labelled):
    splits = labelled_splits(labelled)
    assert len(splits['train']) == 12 and len(splits['val']) == 6
    single = labelled_splits(osp.join(labelled, 'train'), val_fraction=0.25)
    assert [len(single[s]) for s in ('train', 'val')] == [9, 3]
    assert single['train'].classes == splits['train'].classes
    os.makedirs(tmp_path / 'train/a')
    os.makedirs(tmp_path / 'val/b')
    (tmp_path / 'train/a/x.png').write_bytes(b'')
    (tmp_path / 'val/b/y.png').write_bytes(b'')
    with pytest.raises(ValueError, match=r"val classes \['b'\]"):
        labelled_splits(str(tmp_path))


#: Options (with --methods byol unless said) that must fail before any
#: training, the error and what its message says.
BAD_INPUTS = [
    ('--methods simclr', ValueError, "unknown method 'simclr'"),
    ('--methods ediy', ValueError, 'add byol to --methods or give --teacher'),
    ('--methods x=nowhere.py', FileNotFoundError,
     "config 'nowhere.py' of method 'x'"),
    ('--epochs 1', ValueError, 'give --epochs >= 2'),
    ('--size 16', ValueError, '--size must be >= 32'),
    ('--pretrain-limit 3', ValueError, 'make no full batch of 8'),
    (f'--dense {ROOT}', FileNotFoundError, 'instances_train'),
    (f'--dense {COCO}', ValueError,
     'has 1 train image.*give --dense-weight-decay'),
    ('--teacher missing.pth', FileNotFoundError, '--teacher'),
]


@pytest.mark.parametrize('options, error, match', BAD_INPUTS)
def test_bad_inputs_fail_before_training(labelled, tmp_path, options, error,
                                         match):
    tool = load_tool('tools/analysis_tools/compare_methods.py')
    argv = ['--data', labelled, '--work-dir', str(tmp_path)]
    argv += '--size 64 --batch-size 8 --epochs 2 --methods byol'.split()
    with pytest.raises(error, match=match):
        tool.main(argv + options.split())
    assert not osp.exists(tmp_path / 'runs')


def test_unavailable_method_says_why(tmp_path):
    config = tmp_path / 'no_crop.py'
    config.write_text(
        "_base_ = '" +
        osp.join(ROOT, 'configs/ediy/'
                 'byol_resnet18_cpu-128px_photos.py') + "'\n"
        "train_dataloader = dict(dataset=dict(pipeline=[dict(type="
        "'LoadImageFromFile')]))\n")
    methods = resolve_methods([f'mine={config}', 'byol'])
    assert methods['byol']['available']
    assert not methods['mine']['available']
    assert 'sets no view size the comparison knows (RandomResizedCrop.scale' \
        in methods['mine']['reason']
    settings = CompareSettings(data='x')
    assert settings.training()['data'] == osp.abspath('x')
    assert 'workers' not in {**settings.training(), **settings.evaluation()}
