"""Two processes on the CPU (gloo) through tools/dist_train.sh."""
import os
import os.path as osp
import socket
import subprocess

import torch

from helpers import CPU_EDIY, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


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
    env = dict(
        os.environ,
        PORT=str(free_port()),
        PYTHONPATH=osp.join(ROOT, 'tests'),
        OMP_NUM_THREADS='1')
    proc = subprocess.run([
        'bash',
        osp.join(ROOT, 'tools/dist_train.sh'),
        str(config), '2', '--work-dir',
        str(work_dir), '--cfg-options',
        f'model.teacher.checkpoint={byol_teacher}',
        f'train_dataloader.dataset.data_root={photos_dir}',
        'train_dataloader.dataset.repeat=1', 'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1'
    ],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rank0 = torch.load(work_dir / 'rank0.pth')
    rank1 = torch.load(work_dir / 'rank1.pth')
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert sorted(p.name for p in work_dir.glob('*.pth')) == [
        'epoch_1.pth', 'rank0.pth', 'rank1.pth'
    ]
    # every log line of the iterations comes from one process (rank 0)
    lines = [ln for ln in out.splitlines() if 'Epoch(train)' in ln]
    assert lines and len(lines) == len(set(lines))
