"""Plain helpers shared by the tests."""
import contextlib
import glob
import importlib.util
import json
import logging
import multiprocessing
import os
import os.path as osp
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer
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


def run_command(cmd: list,
                env: Optional[dict] = None,
                timeout: float = 600,
                check: bool = True) -> str:
    """Run ``cmd`` from the repository root; return its stdout and stderr,
    interleaved; with ``check``, assert that it succeeded (the tail shows
    what failed and when)."""
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0 or not check, proc.stdout[-4000:]
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
    run that failed (or never started) fails with why."""

    def __getitem__(self, name: str) -> str:
        log = super().__getitem__(name)
        assert not log.startswith('FAILED'), log[-6000:]
        return log


def run_dist_jobs(jobs: Dict[str, Sequence[str]], folder) -> DistRuns:
    """Run several trainings in one launch of 2 CPU (gloo) processes
    (``tests/dist_jobs.py``): each goes through tools/train.py's own
    argument parsing, config merging and runner, as under
    tools/dist_train.sh, one after the other; the launch stops at the
    first run that fails.

    Args:
        jobs (dict[str, Sequence[str]]): A name to tools/train.py's
            arguments (the config first, ``--work-dir`` given).
        folder: Where to write the list of jobs.

    Returns:
        DistRuns: Rank 0's log of each run, or why it has none.
    """
    path = osp.join(str(folder), 'dist_jobs.json')
    with open(path, 'w') as f:
        json.dump({
            name: [str(a) for a in argv]
            for name, argv in jobs.items()
        }, f)
    env = _dist_env()
    out = run_command([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={env["PORT"]}',
        osp.join(ROOT, 'tests/dist_jobs.py'), path
    ],
                      env,
                      timeout=300 + 120 * len(jobs),
                      check=False)
    runs, failure = DistRuns(), None
    for name, argv in jobs.items():
        work_dir = str(argv[list(argv).index('--work-dir') + 1])
        failed = sorted(glob.glob(osp.join(work_dir, 'failed_rank*.txt')))
        logs = glob.glob(osp.join(work_dir, '*', '*.log'))
        if failed:
            texts = []
            for path in failed:  # every rank: the first to fail says why
                with open(path) as f:
                    texts.append(f'{path}:\n{f.read()}')
            runs[name] = failure = 'FAILED\n' + '\n'.join(texts)
        elif failure is not None or len(logs) != 1:
            runs[name] = (f'FAILED: {name} has no log; the launch ended '
                          f'before it:\n{failure or out[-4000:]}')
        else:
            with open(logs[0]) as f:
                runs[name] = f.read()
    return runs


def _fresh_process_state() -> None:
    """In a forked child, undo what the parent (pytest, earlier tests)
    left that a new interpreter would not have: new random seeds, Python's
    own warning display (pytest records warnings), no root log handlers
    (pytest's capture), no mmengine named instances (loggers, message
    hubs, scopes, visualisers)."""
    np.random.seed()
    random.seed()
    warnings.resetwarnings()
    warnings.showwarning = _show_warning
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)
    classes = [MMLogger, MessageHub, DefaultScope, Visualizer]
    while classes:
        cls = classes.pop()
        cls._instance_dict.clear()
        classes += cls.__subclasses__()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Print a warning to stderr, as Python does by default."""
    sys.stderr.write(
        warnings.formatwarning(message, category, filename, lineno, line))


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
    _fresh_process_state()
    torch.set_num_threads(1)
    sys.argv = [osp.join(ROOT, 'tools/train.py'), *argv]
    load_tool('tools/train.py').main()


class _Training:
    """A tools/train.py run in a session of its own: a forked child of this
    process (the same code as ``python tools/train.py`` without spending
    seconds on importing torch and OpenMMLab again), or a new interpreter
    once this process has used CUDA (a forked child cannot)."""

    def __init__(self, argv: Sequence[str], log: str) -> None:
        self.log = log
        if torch.cuda.is_initialized():
            with open(log, 'w') as out:
                self._child = subprocess.Popen(
                    [sys.executable,
                     osp.join(ROOT, 'tools/train.py'), *argv],
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True)
        else:
            self._child = multiprocessing.get_context('fork').Process(
                target=_train_main, args=(argv, log))
            self._child.start()
        self.pid = self._child.pid

    def alive(self) -> bool:
        if isinstance(self._child, subprocess.Popen):
            return self._child.poll() is None
        return self._child.is_alive()

    def wait(self, timeout: Optional[float] = None) -> None:
        if isinstance(self._child, subprocess.Popen):
            try:
                self._child.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        else:
            self._child.join(timeout)

    @property
    def exitcode(self) -> Optional[int]:
        """The exit code; ``-N`` if signal ``N`` ended it."""
        if isinstance(self._child, subprocess.Popen):
            return self._child.returncode
        return self._child.exitcode

    def kill(self) -> None:
        """SIGKILL its whole session, if it still runs, and reap it."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # before its setsid
                os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def output(self) -> str:
        with open(self.log) as f:
            return f.read()


@contextlib.contextmanager
def started_train(
    config: str,
    work_dir: str,
    options: Sequence[str] = (),
    extra: Sequence[str] = ()
) -> Iterator[_Training]:
    """tools/train.py started (:class:`_Training`); on leaving, killed if it
    still runs, and its output file removed."""
    argv = [str(config), '--work-dir', str(work_dir), *extra]
    if options:
        argv += ['--cfg-options', *options]
    fd, log = tempfile.mkstemp(suffix='.log', prefix='train_')
    os.close(fd)
    run = None
    try:
        run = _Training(argv, log)
        yield run
    finally:
        if run is not None:
            run.kill()
        os.remove(log)


def train_to_the_end(
    config: str,
    work_dir: str,
    options: Sequence[str] = (),
    extra: Sequence[str] = ()
) -> Tuple[int, str]:
    """tools/train.py (:func:`started_train`) until it exits (10 minutes
    at most).

    Returns:
        tuple[int, str]: Its exit code and its stdout and stderr,
        interleaved.
    """
    with started_train(config, work_dir, options, extra) as run:
        run.wait(600)
        run.kill()
        return run.exitcode, run.output()


def run_train(config: str, work_dir: str, *options: str, extra=()) -> str:
    """tools/train.py (:func:`started_train`); assert it succeeds and return
    its stdout and stderr, interleaved."""
    code, out = train_to_the_end(config, work_dir, options, extra)
    assert code == 0, out[-4000:]
    return out


def train_then_kill(config: str, work_dir: str, options: Sequence[str],
                    checkpoint: str) -> None:
    """Start tools/train.py (:func:`started_train`) and SIGKILL it, with its
    whole session, as soon as its ``last_checkpoint`` names
    ``checkpoint`` (e.g. ``'iter_4.pth'``): a real kill, mid-run."""
    with started_train(config, work_dir, options) as run:
        pointer = osp.join(work_dir, 'last_checkpoint')
        deadline = time.time() + 300
        while time.time() < deadline and run.alive():
            if osp.exists(pointer) and open(pointer).read().endswith(
                    checkpoint):
                break
            time.sleep(0.05)
        run.kill()
        assert run.exitcode == -signal.SIGKILL, (
            'it ended before the kill:\n' + run.output()[-4000:])


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
