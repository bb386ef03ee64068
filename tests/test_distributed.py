"""Two processes on the CPU (gloo): the full E-DIY with gradient
accumulation through tools/dist_train.sh, and every ablation switch of
Table 1 and the variants (one launch, each run as tools/train.py runs it),
without ``find_unused_parameters``."""
import math

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from helpers import CPU_EDIY, load_tool, run_dist_jobs, run_dist_train


def one_pass(batch_size=4):
    """Options for one epoch of one pass over the photos, a log line per
    iteration."""
    return [
        f'train_dataloader.batch_size={batch_size}',
        'train_dataloader.dataset.repeat=1', 'train_dataloader.num_workers=0',
        'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1'
    ]


def dist_train(config, work_dir, *options, batch_size=4):
    """Two CPU processes through tools/dist_train.sh, :func:`one_pass`;
    return the output."""
    return run_dist_train(config, work_dir, *options, *one_pass(batch_size))


def dist_jobs(jobs, folder, batch_size=2):
    """:func:`run_dist_jobs` of ``name: (config, options)``, each in
    ``folder / name`` for :func:`one_pass` (which ``options`` override)."""
    return run_dist_jobs(
        {
            name: [
                config, '--work-dir',
                str(folder / name), '--cfg-options', *one_pass(batch_size),
                *options
            ]
            for name, (config, options) in jobs.items()
        }, folder)


def test_two_process_cpu_training(tmp_path, photos_dir, byol_teacher):
    config = tmp_path / 'dist_cfg.py'
    config.write_text(
        f"_base_ = '{CPU_EDIY}'\n"
        "custom_imports = dict(imports=['ediy_mm', 'rank_dump_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='TeacherHook', probe_size=128), "
        "dict(type='FiniteLossHook'), dict(type='RandomStateHook'), "
        "dict(type='RankDumpHook')]\n")
    work_dir = tmp_path / 'work'
    out = dist_train(config, work_dir,
                     f'model.teacher.checkpoint={byol_teacher}',
                     f'train_dataloader.dataset.data_root={photos_dir}',
                     'optim_wrapper.accumulative_counts=2')
    rank0 = torch.load(work_dir / 'rank0.pth')
    rank1 = torch.load(work_dir / 'rank1.pth')
    assert rank0.keys() == rank1.keys()
    assert any(k.startswith('target_net.') for k in rank0)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert sorted(p.name for p in work_dir.glob('*.pth')) == [
        'epoch_1.pth', 'rank0.pth', 'rank1.pth'
    ]
    # no hook: under MMDistributedDataParallel, which bypasses the model's
    # train_step, the target moved once per optimizer step (of 2 iterations)
    ckpt = _load_checkpoint(str(work_dir / 'epoch_1.pth'))
    iters = ckpt['meta']['iter']
    assert iters >= 2
    moves = int(ckpt['state_dict']['target_net.steps']) - 1
    assert moves == math.ceil(iters / 2)
    # every log line of the iterations comes from one process (rank 0)
    lines = [ln for ln in out.splitlines() if 'Epoch(train)' in ln]
    assert lines and len(lines) == len(set(lines))


#: The ablation switches a user sets on the command line, with the loss
#: terms each one logs.
ABLATIONS = {
    'byol-only': (['model.head.lambda_rdem=0',
                   'model.head.lambda_riem=0'], {'loss_byol'}),
    'rdem-only': (['model.head.lambda_riem=0',
                   'model.head.lambda_byol=0'], {'loss_rdem'}),
    'riem-only': (['model.head.lambda_rdem=0',
                   'model.head.lambda_byol=0'], {'loss_riem'}),
    'rdem-riem-no-byol':
    (['model.head.lambda_byol=0'], {'loss_rdem', 'loss_riem'}),
    'random-regions':
    (['model.region_source=random'], {'loss_byol', 'loss_rdem', 'loss_riem'}),
    'rins-riem': (['model.head.rdem_negative=instance'],
                  {'loss_byol', 'loss_rdem', 'loss_riem'}),
    'teacher-free':
    (['model.region_source=target'], {'loss_byol', 'loss_rdem', 'loss_riem'}),
}


@pytest.fixture(scope='module')
def ablation_runs(tmp_path_factory, photos_dir, byol_teacher):
    """Every switch, 2 processes, one launch."""
    common = [
        f'model.teacher.checkpoint={byol_teacher}',
        f'train_dataloader.dataset.data_root={photos_dir}',
        # 64 px views (2 x 2 regions): the test is about DDP, not accuracy
        'train_dataloader.dataset.pipeline.0.transforms.0.0.scale=64'
    ]
    return dist_jobs(
        {
            name: (CPU_EDIY, [*common, *options])
            for name, (options, _) in ABLATIONS.items()
        }, tmp_path_factory.mktemp('ablations'))


@pytest.mark.parametrize('name', list(ABLATIONS))
def test_ablation_switch_trains_under_ddp(ablation_runs, name):
    out = ablation_runs[name]
    terms = ABLATIONS[name][1]
    lines = [ln for ln in out.splitlines() if 'Epoch(train)' in ln]
    assert len(lines) >= 2  # the second iteration is where DDP failed
    for line in lines:
        logged = {w.rstrip(':') for w in line.split() if w.startswith('loss_')}
        assert logged == terms, line


def test_train_script_destroys_its_process_group(tmp_path):
    """tools/train.py ends a distributed run by destroying the process
    group: left to interpreter shutdown, gloo can abort a process whose
    training succeeded (``terminate called without an active exception``)."""
    dist = torch.distributed
    dist.init_process_group(
        'gloo',
        init_method=f'file://{tmp_path / "store"}',
        rank=0,
        world_size=1)
    try:
        load_tool('tools/train.py').close_distributed()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
