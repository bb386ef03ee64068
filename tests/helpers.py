"""Plain helpers shared by the tests."""
import importlib.util
import os.path as osp
import subprocess
import sys

import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

import ediy_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CPU_BYOL = osp.join(ROOT, 'configs/ediy/byol_resnet18_cpu-128px_photos.py')
CPU_EDIY = osp.join(ROOT, 'configs/ediy/ediy_resnet18_cpu-128px_photos.py')


def load_tool(relpath: str):
    """Import a script of tools/ as a module."""
    path = osp.join(ROOT, relpath)
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_train(config: str, work_dir: str, *options: str, extra=()) -> str:
    """Run tools/train.py in a subprocess; return its combined output."""
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir,
        *extra
    ]
    if options:
        cmd += ['--cfg-options', *options]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


PRED = dict(
    type='NonLinearNeck',
    in_channels=32,
    hid_channels=64,
    out_channels=32,
    num_layers=2,
    with_bias=True,
    with_last_bn=False,
    with_avg_pool=False,
    norm_cfg=dict(type='BN1d'))
BACKBONE = dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'))


def build_ediy(teacher=None, **head):
    MessageHub.get_current_instance().update_info('max_iters', 10)
    return MODELS.build(
        dict(
            type='EDIY',
            backbone=BACKBONE,
            neck=dict(
                type='EDIYNeck',
                in_channels=512,
                hid_channels=64,
                out_channels=32,
                norm_cfg=dict(type='BN1d')),
            head=dict(type='EDIYHead', predictor=PRED, **head),
            teacher=teacher))


def views(batch=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, size, size, generator=g) for _ in range(2)]
