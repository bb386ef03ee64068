"""Plain helpers shared by the tests."""
import glob
import importlib.util
import json
import multiprocessing
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

import ediy_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CPU_BYOL = osp.join(ROOT, 'configs/ediy/byol_resnet18_cpu-128px_photos.py')
CPU_EDIY = osp.join(ROOT, 'configs/ediy/ediy_resnet18_cpu-128px_photos.py')
#: The methods' pre-training configs for the papers' datasets (ImageNet-1K,
#: COCO), every backbone, found by name so that a new one cannot be missed.
PAPER_CONFIGS = sorted(
    path for method in ('ediy', 'mosrep', 'univip')
    for path in glob.glob(osp.join(ROOT, 'configs', method, '*.py'))
    if path.endswith(('_in1k.py', '_coco.py')))


def load_tool(relpath: str):
    """Import a script of tools/ as a module."""
    path = osp.join(ROOT, relpath)
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_command(cmd: list, env: Optional[dict] = None) -> str:
    """Run ``cmd`` from the repository root; assert it succeeds and return
    its stdout and stderr, interleaved (the tail shows what failed and
    when)."""
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def _dist_env() -> Dict[str, str]:
    """The environment of a 2-process CPU launch: a free port, one thread
    per process, ``tests/`` on the path (for test-only hooks)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(port),
        PYTHONPATH=os.pathsep.join([ROOT, osp.join(ROOT, 'tests')]),
        OMP_NUM_THREADS='1')


def run_dist_train(config: str, work_dir: str, *options: str) -> str:
    """Run tools/dist_train.sh with 2 CPU (gloo) processes; return its
    combined output."""
    cmd = [
        'bash',
        osp.join(ROOT, 'tools/dist_train.sh'),
        str(config), '2', '--work-dir',
        str(work_dir), '--cfg-options', *options
    ]
    return run_command(cmd, _dist_env())


class DistRuns(dict):
    """Rank 0's log of each run of :func:`run_dist_jobs`, by name; reading a
    run that failed fails with its traceback."""

    def __getitem__(self, name: str) -> str:
        log = super().__getitem__(name)
        assert not log.startswith('FAILED'), log[-4000:]
        return log


def run_dist_jobs(jobs: Dict[str, Sequence[str]], folder) -> DistRuns:
    """Run several trainings in one launch of 2 CPU (gloo) processes
    (``tests/dist_jobs.py``): each goes through tools/train.py's own
    argument parsing, config merging and runner, as under
    tools/dist_train.sh, one after the other.

    Args:
        jobs (dict[str, Sequence[str]]): A name to tools/train.py's
            arguments (the config first, ``--work-dir`` given).
        folder: Where to write the list of jobs.

    Returns:
        DistRuns: Rank 0's log of each run.
    """
    path = osp.join(str(folder), 'dist_jobs.json')
    with open(path, 'w') as f:
        json.dump({
            name: [str(a) for a in argv]
            for name, argv in jobs.items()
        }, f)
    env = _dist_env()
    run_command([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={env["PORT"]}',
        osp.join(ROOT, 'tests/dist_jobs.py'), path
    ], env)
    runs = DistRuns()
    for name, argv in jobs.items():
        work_dir = str(argv[list(argv).index('--work-dir') + 1])
        failed = sorted(glob.glob(osp.join(work_dir, 'failed_rank*.txt')))
        logs = glob.glob(osp.join(work_dir, '*', '*.log'))
        if failed:
            with open(failed[0]) as f:
                runs[name] = f'FAILED {failed[0]}\n{f.read()}'
        else:
            (log, ) = logs
            with open(log) as f:
                runs[name] = f.read()
    return runs


def _train_main(argv: Sequence[str], log: str) -> None:
    """In a forked child: tools/train.py's ``main`` with ``argv``, one torch
    thread (OpenMP is not fork-safe: DataLoader workers do the same), its
    stdout and stderr into ``log``, in a session of its own."""
    os.setsid()
    os.chdir(ROOT)
    out = open(log, 'w', buffering=1)
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    sys.stdout = sys.stderr = out
    torch.set_num_threads(1)
    sys.argv = [osp.join(ROOT, 'tools/train.py'), *argv]
    load_tool('tools/train.py').main()


def start_train(config: str,
                work_dir: str,
                options: Sequence[str] = (),
                extra: Sequence[str] = ()):
    """Start tools/train.py's ``main`` in a forked child of this process:
    the same code as ``python tools/train.py``, without spending seconds on
    importing torch and OpenMMLab again.

    Returns:
        tuple: The ``multiprocessing`` process and the path of its output.
    """
    argv = [str(config), '--work-dir', str(work_dir), *extra]
    if options:
        argv += ['--cfg-options', *options]
    log = tempfile.mktemp(suffix='.log', prefix='train_')
    process = multiprocessing.get_context('fork').Process(
        target=_train_main, args=(argv, log))
    process.start()
    return process, log


def train_to_the_end(
    config: str,
    work_dir: str,
    options: Sequence[str] = (),
    extra: Sequence[str] = ()
) -> Tuple[int, str]:
    """tools/train.py (:func:`start_train`) until it exits.

    Returns:
        tuple[int, str]: Its exit code and its stdout and stderr,
        interleaved.
    """
    process, log = start_train(config, work_dir, options, extra)
    process.join(600)
    if process.is_alive():
        os.killpg(process.pid, signal.SIGKILL)
        process.join()
    with open(log) as f:
        out = f.read()
    os.remove(log)
    return process.exitcode, out


def run_train(config: str, work_dir: str, *options: str, extra=()) -> str:
    """tools/train.py (:func:`start_train`); assert it succeeds and return
    its stdout and stderr, interleaved."""
    code, out = train_to_the_end(config, work_dir, options, extra)
    assert code == 0, out[-4000:]
    return out


def train_then_kill(config: str, work_dir: str, options: Sequence[str],
                    checkpoint: str) -> None:
    """Start tools/train.py (:func:`start_train`) and SIGKILL it, with its
    whole process group, as soon as its ``last_checkpoint`` names
    ``checkpoint`` (e.g. ``'iter_4.pth'``): a real kill, mid-run."""
    process, log = start_train(config, work_dir, options)
    pointer = osp.join(work_dir, 'last_checkpoint')
    deadline = time.time() + 300
    while time.time() < deadline and process.is_alive():
        if osp.exists(pointer) and open(pointer).read().endswith(checkpoint):
            break
        time.sleep(0.05)
    if process.is_alive():
        os.killpg(process.pid, signal.SIGKILL)
    process.join()
    os.remove(log)
    assert process.exitcode == -signal.SIGKILL, 'it ended before the kill'


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


def build_ediy(region_source='target', teacher=None, **head):
    """A small E-DIY for direct calls of ``loss()``."""
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
            region_source=region_source,
            teacher=teacher))


def views(batch=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, size, size, generator=g) for _ in range(2)]


#: Keys beside the backbone that every converter must drop. The target's
#: ``conv1.weight`` has the backbone's name after its own prefix.
OTHER_KEYS = {
    'neck.global_projector.mlp.0.weight': (8, 2048),
    'target_net.module.0.conv1.weight': (64, 3, 7, 7),
    'teacher.layer4.2.bn3.running_var': (2048, ),
}


def save_r50_checkpoint(path: str, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Save an mmpretrain ResNet-50 as part of an mmengine checkpoint.

    Every BN tensor is drawn at random, so no value equals a default
    initialisation by chance.

    Args:
        path (str): Where to save.
        seed (int): Seed of the weights. Defaults to 0.

    Returns:
        dict[str, Tensor]: The backbone's own state dict.
    """
    torch.manual_seed(seed)
    backbone = MODELS.build(dict(type='ResNet', depth=50))
    backbone.init_weights()
    backbone = backbone.state_dict()
    for key, value in backbone.items():
        if key.endswith('num_batches_tracked'):
            value.fill_(7)
        elif value.dim() == 1 and key.endswith(('weight', 'running_var')):
            value.uniform_(0.5, 1.5)
        elif value.dim() == 1:
            value.normal_(0, 0.1)
    state_dict = {f'backbone.{k}': v for k, v in backbone.items()}
    state_dict.update((k, torch.randn(s)) for k, s in OTHER_KEYS.items())
    hub = MessageHub.get_instance('test_converters')
    hub.update_scalar('train/loss', 1.5)
    torch.save(
        dict(
            meta=dict(epoch=1, iter=10),
            state_dict=state_dict,
            message_hub=hub.state_dict()), path)
    return backbone
