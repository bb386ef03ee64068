"""E-DIY on a tiny ViT/16 and a tiny ConvNeXt through the real Runner and
the shipped CPU configs: tools/train.py, two gloo processes (one launch
for both, each run as tools/dist_train.sh runs it), with a teacher and
teacher-free, and a bit-exact resume after a SIGKILL."""
import os.path as osp

import pytest
import torch
from test_distributed import dist_jobs

from helpers import ROOT, run_train, train_then_kill

CPU_VIT = osp.join(ROOT, 'configs/ediy/ediy_vit-mini-p16_cpu-128px_photos.py')
CPU_CONVNEXT = osp.join(ROOT,
                        'configs/ediy/ediy_convnext-mini_cpu-128px_photos.py')
CPU_TIMM = osp.join(
    ROOT, 'configs/ediy/ediy_timm-convnext-atto_cpu-128px_photos.py')
TEACHER_FREE = ('model.region_source=target', 'model.teacher=None')
#: Views of 128 x 96 px: a non-square 8 x 6 patch grid for the ViT, and a
#: 4 x 3 grid for the ResNet-18 teacher, resized by region_grid.
NON_SQUARE = 'train_dataloader.dataset.pipeline.0.transforms.0.0.scale=' \
    '[128,96]'

ITER_CFG = """_base_ = '{base}'
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='CosineAnnealingLR', T_max=2, by_epoch=False, begin=2, end=4)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=4))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
"""


def losses_logged(out):
    lines = [ln for ln in out.splitlines() if 'loss_rdem' in ln]
    assert lines, out[-3000:]
    return lines


def checkpoint(path):
    ckpt = torch.load(path, weights_only=False)
    return ckpt['state_dict'], ckpt['optimizer']['state'], ckpt['meta']


def test_vit_with_teacher_resumes_bit_exactly_after_a_kill(
        tmp_path, photos_dir, byol_teacher, monkeypatch):
    """The ViT config with its ResNet-18 teacher on non-square views,
    killed after its iteration-2 checkpoint and resumed, ends where an
    uninterrupted run ends."""
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # 2 shared cores
    config = tmp_path / 'iter_vit.py'
    config.write_text(ITER_CFG.format(base=CPU_VIT))
    opts = (f'model.teacher.checkpoint={byol_teacher}',
            f'train_dataloader.dataset.data_root={photos_dir}',
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            NON_SQUARE)
    run_a, run_b = str(tmp_path / 'a'), str(tmp_path / 'b')
    out = run_train(str(config), run_a, *opts)
    assert 'TeacherHook: teacher' in out
    losses_logged(out)

    train_then_kill(str(config), run_b, opts, 'iter_2.pth')
    assert not osp.exists(osp.join(run_b, 'iter_4.pth'))

    out = run_train(str(config), run_b, *opts, extra=['--resume'])
    assert 'RandomStateHook: resumed the random state' in out
    weights_a, optim_a, meta_a = checkpoint(osp.join(run_a, 'iter_4.pth'))
    weights_b, optim_b, meta_b = checkpoint(osp.join(run_b, 'iter_4.pth'))
    assert meta_a['iter'] == meta_b['iter'] == 4
    assert weights_a.keys() == weights_b.keys()
    assert any(k.startswith('teacher.') for k in weights_a)
    for key in weights_a:  # online, target and teacher
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert optim_a.keys() == optim_b.keys()
    for i in optim_a:
        for name, value in optim_a[i].items():
            assert torch.equal(value, optim_b[i][name]), (i, name)


def test_convnext_teacher_free_trains_with_train_py(tmp_path, photos_dir,
                                                    monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    out = run_train(CPU_CONVNEXT, str(tmp_path), *TEACHER_FREE,
                    f'train_dataloader.dataset.data_root={photos_dir}',
                    'train_dataloader.batch_size=4',
                    'train_dataloader.num_workers=0',
                    'train_dataloader.dataset.repeat=1',
                    'train_cfg.max_epochs=1',
                    'default_hooks.logger.interval=1')
    assert "no frozen teacher (region_source='target')" in out
    assert len(losses_logged(out)) >= 2
    assert osp.exists(tmp_path / 'epoch_1.pth')


#: name: (config, with the teacher)
DIST_RUNS = {
    'vit-teacher-free': (CPU_VIT, False),
    'convnext-teacher': (CPU_CONVNEXT, True)
}


@pytest.fixture(scope='module')
def dist_runs(tmp_path_factory, photos_dir, byol_teacher):
    """Both backbones, 2 processes, one launch."""
    jobs = {
        name: (config, [
            *((f'model.teacher.checkpoint={byol_teacher}', ) if teacher else
              TEACHER_FREE), f'train_dataloader.dataset.data_root={photos_dir}'
        ])
        for name, (config, teacher) in DIST_RUNS.items()
    }
    folder = tmp_path_factory.mktemp('backbones_dist')
    return folder, dist_jobs(jobs, folder)


@pytest.mark.parametrize('name', list(DIST_RUNS))
def test_two_gloo_processes(dist_runs, name):
    """Two processes as under tools/dist_train.sh, at least two iterations
    (DDP fails on the second when a parameter got no gradient)."""
    folder, runs = dist_runs
    lines = losses_logged(runs[name])
    assert len(lines) >= 2
    for line in lines:
        logged = {w.rstrip(':') for w in line.split() if w.startswith('loss_')}
        assert logged == {'loss_byol', 'loss_rdem', 'loss_riem'}, line
    assert osp.exists(folder / name / 'epoch_1.pth')


def test_timm_example_config_trains(tmp_path, photos_dir, byol_teacher,
                                    monkeypatch):
    pytest.importorskip(
        'timm',
        reason='timm is not installed (optional extra: pip install '
        '"ediy_mm[timm]"); the TIMMBackbone example config needs it')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    out = run_train(
        CPU_TIMM, str(tmp_path), f'model.teacher.checkpoint={byol_teacher}',
        f'train_dataloader.dataset.data_root={photos_dir}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.dataset.repeat=1', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1')
    assert 'TeacherHook: teacher' in out
    assert len(losses_logged(out)) >= 2
