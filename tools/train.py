"""Train a model with the mmengine Runner (mmpretrain's flags).

Example::

    python tools/train.py configs/ediy/ediy_resnet18_cpu-128px_photos.py
    torchrun --nproc_per_node=8 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or, without a path, from the '
        'latest checkpoint of the work directory')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision: bfloat16 where the device supports '
        'it, else float16 with dynamic loss scaling')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by (GPUs x batch x accumulation '
        'steps) / auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def amp_dtype() -> str:
    """``'bfloat16'`` where supported, else ``'float16'``."""
    if not torch.cuda.is_available() or torch.cuda.is_bf16_supported():
        return 'bfloat16'
    return 'float16'


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = amp_dtype()
        if cfg.optim_wrapper.dtype == 'float16':
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.auto_scale_lr:
        # mmengine scales by GPUs x batch only; one optimiser update sees
        # accumulative_counts batches, so count them too.
        accumulation = cfg.optim_wrapper.get('accumulative_counts', 1)
        cfg.auto_scale_lr.enable = True
        cfg.auto_scale_lr.base_batch_size /= accumulation
    if args.launcher != 'none' and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)
    return cfg


def setup_cpu_distributed(cfg: Config) -> None:
    """Make a multi-process run work on CPUs (gloo).

    mmengine's ``init_dist`` calls ``torch.cuda.set_device``; it is skipped
    when a process group already exists. The wrapper gives DDP no device ids
    and turns SyncBN (CUDA only) into per-process BN.
    """
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group('gloo')
    cfg.model_wrapper_cfg = dict(
        type='CPUDistributedDataParallel', broadcast_buffers=False)


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type``, else mmengine's Runner."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def main() -> None:
    args = parse_args()
    build_runner(merge_args(Config.fromfile(args.config), args)).train()
    close_distributed()


def close_distributed() -> None:
    """Destroy the process group before the interpreter exits.

    Left to interpreter finalisation, gloo's worker threads can still hold
    work when the process tears down, and the process then aborts
    (``terminate called without an active exception``, SIGABRT) after a
    training that succeeded (pytorch/pytorch#190489). mmengine does not
    destroy the group it creates, so every launcher path ends here.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
