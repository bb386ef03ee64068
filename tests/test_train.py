"""E-DIY trains through tools/train.py and the real mmengine Runner."""
import glob
import json
import math
import os.path as osp

import torch

from helpers import CPU_EDIY, run_train


def read_scalars(work_dir):
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_cpu_config_trains_with_teacher(tmp_path, photos_dir, byol_teacher):
    work_dir = str(tmp_path / 'ediy')
    out = run_train(CPU_EDIY, work_dir,
                    f'model.teacher.checkpoint={byol_teacher}',
                    f'train_dataloader.dataset.data_root={photos_dir}',
                    'train_dataloader.dataset.repeat=4',
                    'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
                    'default_hooks.logger.interval=2')
    assert 'TeacherHook: teacher' in out and 'fingerprint' in out
    logged = [r for r in read_scalars(work_dir) if 'loss' in r]
    assert len(logged) >= 2 and logged[-1]['iter'] >= 4
    for record in logged:
        for term in ('loss_byol', 'loss_rdem', 'loss_riem'):
            assert math.isfinite(record[term]), record
        total = record['loss_byol'] + record['loss_rdem'] + record['loss_riem']
        assert math.isclose(record['loss'], total, rel_tol=1e-4)

    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), weights_only=False)
    state = ckpt['state_dict']
    teacher = torch.load(byol_teacher, weights_only=False)['state_dict']
    teacher_keys = [k for k in state if k.startswith('teacher.backbone.')]
    assert any(k.endswith('running_mean') for k in teacher_keys)
    for key in teacher_keys:
        source = 'backbone.' + key[len('teacher.backbone.'):]
        # bit-identical, BN running statistics included
        assert torch.equal(state[key], teacher[source]), key
