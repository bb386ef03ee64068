"""The GPU pre-training configs turn on cuDNN's benchmark and TF32
matmuls; TF32Hook sets the precision for a run and puts it back."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import TensorDataset

from helpers import PAPER_CONFIGS, ROOT

#: The pre-training configs for GPUs: ImageNet and COCO, every backbone,
#: ablations and schedules included (the CPU and small-image configs are
#: left as they are).
GPU_PRETRAIN = sorted(
    PAPER_CONFIGS +
    glob.glob(osp.join(ROOT, 'configs', '*', 'ablations', '*.py')))


def test_the_paper_configs_are_all_listed():
    names = {osp.basename(p) for p in GPU_PRETRAIN}
    assert {
        'ediy_resnet50_16xb128-accum2-lars-coslr-100e_in1k.py',
        'ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py',
        'ediy_resnet50_16xb128-accum2-lars-coslr-1000e_in1k.py',
        'mosrep_resnet50_8xb64-coslr-200e_in1k.py',
        'univip_resnet50_16xb256-coslr-200e_in1k.py',
        'univip_resnet50_8xb64-coslr-800e_coco.py',
        'ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py',
        'ediy_swin-tiny_16xb256-amp-coslr-300e_in1k.py',
        'ediy_convnext-tiny_16xb256-amp-coslr-300e_in1k.py',
        'mosrep_vit-small-p16_8xb64-amp-coslr-200e_in1k.py',
        'univip_vit-small-p16_16xb256-amp-coslr-300e_in1k.py'
    } <= names
    assert any('ablations' in p for p in GPU_PRETRAIN)


@pytest.mark.parametrize(
    'path', GPU_PRETRAIN, ids=[osp.relpath(p, ROOT) for p in GPU_PRETRAIN])
def test_gpu_config_switches(path):
    cfg = Config.fromfile(path)
    assert cfg.env_cfg.cudnn_benchmark is True
    # mmpretrain's other env_cfg keys are kept
    assert cfg.env_cfg.mp_cfg.mp_start_method == 'fork'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    # first, so that README's custom_hooks.0.enabled=False turns it off
    assert cfg.custom_hooks[0] == dict(type='TF32Hook')


class _MatmulPrecision(BaseModel):
    """A linear model that records the float32 matmul precision and the
    TF32 flag its matrix multiplications run under."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.seen = set()

    def forward(self, inputs, data_samples=None, mode='loss'):
        self.seen.add((torch.get_float32_matmul_precision(),
                       torch.backends.cuda.matmul.allow_tf32))
        return dict(loss=self.linear(inputs).pow(2).mean())


@pytest.mark.parametrize('enabled,seen', [(True, ('high', True)),
                                          (False, ('highest', False))])
def test_tf32_hook_sets_the_precision_for_the_run(tmp_path, enabled, seen):
    """As a config uses it: in custom_hooks of mmengine's Runner."""
    before = torch.get_float32_matmul_precision()
    model = _MatmulPrecision()
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        experiment_name=f'tf32_{enabled}',
        default_scope='mmpretrain',
        train_dataloader=dict(
            dataset=TensorDataset(torch.randn(4, 2)),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='TF32Hook', enabled=enabled)],
        default_hooks=dict(logger=None, checkpoint=None))
    runner.train()
    assert model.seen == {seen}
    assert torch.get_float32_matmul_precision() == before
