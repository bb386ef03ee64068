"""Measuring training steps: time, peak memory, arithmetic, environment.

The library behind ``tools/analysis_tools/benchmark_step.py``. A *step* is
a callable that runs one training step of one model; :func:`make_train_step`
makes the Runner's step (data preprocessor, forward, backward, optimizer
step, momentum update) of a model built by :func:`build_step_model` from a
training config (:func:`load_step_config`). The timing
(:func:`time_train_steps`, :func:`step_times`) takes any steps: it runs
them in interleaved rounds, one step of every model per round, so that a
change of the machine's load hits all of them alike, and reports the time
per step, images per second and the per-round ratio to a reference.

Example::

    batch = synthetic_batch(batch_size, size=224, device=device)
    steps = {name: make_train_step(*build_step_model(cfg, device), batch)
             for name, cfg in configs.items()}
    times = time_train_steps(steps, iters=10, warmup=2, device=device)
    report = step_times(times, images_per_step=batch_size)
"""
import contextlib
import copy
import ctypes
import dataclasses
import gc
import os
import platform
import statistics
import threading
import time
from typing import (Any, Callable, ContextManager, Dict, Iterator, List,
                    Mapping, Optional, Sequence, Tuple)
from unittest import mock

import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..datasets import PHOTOMETRIC_KEY
from ..models import PhotometricDataPreprocessor

__all__ = [
    'Step', 'build_step_model', 'count_step_flops', 'describe_environment',
    'load_step_config', 'make_region_loss_step', 'make_train_step',
    'measure_step_memory', 'model_inputs', 'ms_summary', 'profile_step',
    'ratio_summary', 'save_random_backbone', 'sized_options', 'static_bytes',
    'step_times', 'summarise', 'synthetic_batch', 'time_train_steps'
]

#: One training step of one model: runs it, returns nothing.
Step = Callable[[], None]

_MIB = 2.**20


# ---------------------------------------------------------------- building
def load_step_config(path: str,
                     options: Optional[Mapping[str, Any]] = None) -> Config:
    """Load a training config as the Runner sees it, with overrides.

    Args:
        path (str): A config file, or ``'package::relative/path.py'`` for a
            config shipped by an OpenMMLab package (``mmpretrain::byol/
            byol_resnet50_16xb256-coslr-200e_in1k.py``).
        options (dict, optional): ``--cfg-options``-style overrides
            (``{'model.backbone.depth': 18}``), merged last.

    Returns:
        Config: The config; ``model.data_preprocessor`` is filled from the
        top-level ``data_preprocessor`` as the Runner does.
    """
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if options:
        cfg.merge_from_dict(dict(options))
    return cfg


def sized_options(depth: int, hid_channels: int,
                  out_channels: int) -> Dict[str, Any]:
    """Overrides that size a BYOL-style config and fit it to one device.

    For configs with a ``ResNet`` backbone, a projector ``neck`` and a
    ``head.predictor`` (mmpretrain's BYOL, E-DIY): the depth, the projector
    and predictor widths (``in -> hid -> out``, the predictor ``out -> hid
    -> out``), BN instead of SyncBN (one process), and one optimizer step
    per training step (``accumulative_counts=1``).

    Args:
        depth (int): ResNet depth (18, 34: 512 output channels; 50 and
            deeper: 2048).
        hid_channels (int): Hidden width of projector and predictor.
        out_channels (int): Embedding width.

    Returns:
        dict: Options for :func:`load_step_config`.
    """
    feat_channels = 512 if depth in (18, 34) else 2048
    widths = dict(hid_channels=hid_channels, out_channels=out_channels)
    options = {
        'model.backbone.depth': depth,
        'model.backbone.norm_cfg': dict(type='BN'),
        'optim_wrapper.accumulative_counts': 1,
    }
    for key, in_channels in (('model.neck', feat_channels),
                             ('model.head.predictor', out_channels)):
        options[key] = dict(
            widths, in_channels=in_channels, norm_cfg=dict(type='BN1d'))
    return options


def save_random_backbone(backbone: dict,
                         path: str,
                         prefix: str = 'backbone.',
                         seed: int = 0) -> str:
    """Save a randomly initialised backbone as an mmpretrain checkpoint.

    Stands in for a pre-trained one where only the cost matters.

    Args:
        backbone (dict): Backbone config.
        path (str): Where to write the checkpoint.
        prefix (str): Prefix of the state-dict keys. Defaults to
            ``'backbone.'``.
        seed (int): Seed of the initialisation. Defaults to 0.

    Returns:
        str: ``path``.
    """
    torch.manual_seed(seed)
    state = MODELS.build(copy.deepcopy(backbone)).state_dict()
    torch.save(
        dict(state_dict={
            prefix + k: v
            for k, v in state.items()
        }), path)
    return path


def build_step_model(cfg: Config,
                     device: torch.device,
                     seed: int = 0,
                     channels_last: bool = False,
                     compile_backbones: bool = False,
                     amp_dtype: Optional[str] = None,
                     max_iters: int = 10000) -> Tuple[BaseModel, OptimWrapper]:
    """Build, initialise and place a model and its optimizer wrapper.

    The schedule length goes to the message hub, where mmpretrain's
    ``CosineEMA`` reads it, and to the optimizer wrapper, where our momentum
    targets read it after each optimizer step (as a train loop gives it).

    Args:
        cfg (Config): Config with ``model`` and ``optim_wrapper``.
        device (torch.device): Where the model runs.
        seed (int): Seed of the initialisation. Defaults to 0.
        channels_last (bool): Online networks, heads and momentum target in
            channels-last (a frozen teacher keeps its own format). Defaults
            to False.
        compile_backbones (bool): ``torch.compile`` the online, target and
            teacher backbones. Defaults to False.
        amp_dtype (str, optional): ``'bfloat16'`` or ``'float16'``: on CUDA,
            an ``AmpOptimWrapper`` of that dtype. Defaults to None.
        max_iters (int): Schedule length given to the message hub and the
            optimizer wrapper (more than the steps the benchmark takes).
            Defaults to 10000.

    Returns:
        tuple: The model (train mode) and its optimizer wrapper.
    """
    # A benchmark has no train loop: its own schedule length, whatever an
    # earlier run in this process left in the hub.
    MessageHub.get_current_instance().update_info('max_iters', max_iters)
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    model.to(device)
    if channels_last:
        for module in (model.backbone, model.neck, model.head,
                       model.target_net):
            module.to(memory_format=torch.channels_last)
    model.train()
    if compile_backbones:
        backbones = [model.backbone, model.target_net.module[0]]
        if getattr(model, 'teacher', None) is not None:
            backbones.append(model.teacher.backbone)
        for backbone in backbones:
            backbone.compile()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if amp_dtype is not None and device.type == 'cuda':
        optim_cfg.update(type='AmpOptimWrapper', dtype=amp_dtype)
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    optim_wrapper.initialize_count_status(model, 0, max_iters)
    return model, optim_wrapper


# ------------------------------------------------------------------- steps
def synthetic_batch(batch_size: int,
                    size: int,
                    device: torch.device,
                    num_views: int = 2,
                    seed: int = 0) -> dict:
    """A batch of random uint8 views already on the device, as the
    dataloader gives it to ``train_step``.

    Args:
        batch_size (int): Images per view.
        size (int): Side of the square views.
        device (torch.device): Where the views are.
        num_views (int): Views per image. Defaults to 2.
        seed (int): Seed of the pixels. Defaults to 0.

    Returns:
        dict: ``inputs``, ``num_views`` tensors ``[B, 3, size, size]``
        (uint8), and ``data_samples``, ``B`` empty ``DataSample`` s.
    """
    generator = torch.Generator().manual_seed(seed)
    views = [
        torch.randint(
            0,
            256, (batch_size, 3, size, size),
            generator=generator,
            dtype=torch.uint8).to(device) for _ in range(num_views)
    ]
    return dict(
        inputs=views, data_samples=[DataSample() for _ in range(batch_size)])


def _autocast(device: torch.device,
              amp_dtype: Optional[str]) -> Callable[[], ContextManager]:
    """A factory of autocast contexts (no-ops without ``amp_dtype``)."""
    if amp_dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=getattr(torch, amp_dtype))


def model_inputs(model: BaseModel, batch: dict,
                 channels_last: bool) -> Tuple[List[torch.Tensor], list]:
    """The data preprocessor's views (channels-last when asked) and data
    samples. A :class:`PhotometricDataPreprocessor` gets the views marked
    as its data pipeline marks them, so the step includes the photometric
    augmentations it runs on the device."""
    preprocessor = model.data_preprocessor
    if isinstance(preprocessor, PhotometricDataPreprocessor):
        for sample in batch['data_samples']:
            sample.set_metainfo({PHOTOMETRIC_KEY: preprocessor.mark})
    data = preprocessor(batch, True)
    inputs = data['inputs']
    if channels_last:
        inputs = [
            x.contiguous(memory_format=torch.channels_last) for x in inputs
        ]
    return inputs, data['data_samples']


def make_train_step(model: BaseModel,
                    optim_wrapper: OptimWrapper,
                    batch: dict,
                    amp_dtype: Optional[str] = None,
                    channels_last: bool = False) -> Step:
    """The Runner's training step of a model, on a batch on its device.

    ``BaseModel.train_step`` (data preprocessor, forward, backward,
    optimizer step, and our momentum target's move right after it), the
    inputs turned channels-last after the preprocessor when asked
    (mmpretrain's BYOL moves its target inside ``loss``).

    Args:
        model (BaseModel): A model from :func:`build_step_model`.
        optim_wrapper (OptimWrapper): Its optimizer wrapper (one optimizer
            step per call: ``accumulative_counts=1``).
        batch (dict): ``inputs`` (list of views ``[B, 3, H, W]``, uint8, on
            the model's device) and ``data_samples``.
        amp_dtype (str, optional): Autocast dtype of the forward pass.
            Defaults to None (no autocast).
        channels_last (bool): Inputs in channels-last. Defaults to False.

    Returns:
        Step: Runs one training step.
    """
    autocast = _autocast(batch['inputs'][0].device, amp_dtype)

    def step() -> None:
        with optim_wrapper.optim_context(model), autocast():
            losses = model(
                *model_inputs(model, batch, channels_last), mode='loss')
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)

    return step


def make_region_loss_step(model: BaseModel,
                          batch: dict,
                          amp_dtype: Optional[str] = None,
                          channels_last: bool = False) -> Step:
    """Region matching + region losses of an E-DIY model alone.

    Runs one forward pass of ``model`` on ``batch`` without gradient and
    keeps the :class:`~ediy_mm.models.heads.EDIYFeatures` it hands its head.
    The step is ``head.loss`` on those features with ``lambda_byol = 0``
    (on a shallow copy of the head: the region terms only), forward and
    backward down to the online local maps ``[B, D, H, W]``.

    Args:
        model (BaseModel): An ``EDIY`` model from :func:`build_step_model`.
        batch (dict): As for :func:`make_train_step`.
        amp_dtype (str, optional): Autocast dtype. Defaults to None.
        channels_last (bool): Inputs in channels-last. Defaults to False.

    Returns:
        Step: Runs the region terms once, forward and backward.
    """
    autocast = _autocast(batch['inputs'][0].device, amp_dtype)
    head = model.head
    with mock.patch.object(head, 'loss', wraps=head.loss) as spy, \
            torch.no_grad(), autocast():
        model(*model_inputs(model, batch, channels_last), mode='loss')
    feats = spy.call_args.args[0]
    region_head = copy.copy(head)
    region_head.lambda_byol = 0.

    def step() -> None:
        local = tuple(x.detach().requires_grad_() for x in feats.online_local)
        with autocast():
            losses = region_head.loss(
                dataclasses.replace(feats, online_local=local))
        torch.autograd.grad(sum(losses.values()), local)

    return step


# ------------------------------------------------------------------- timing
def _sync(device: Optional[torch.device]) -> None:
    if device is not None and device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_train_steps(
        steps: Mapping[str, Step],
        iters: int,
        warmup: int = 0,
        device: Optional[torch.device] = None) -> Dict[str, List[float]]:
    """Time steps in interleaved rounds.

    Each round runs every step once, in order; the first ``warmup`` rounds
    are not timed. Every step is timed alone, between device
    synchronisations.

    Args:
        steps (dict[str, Step]): The steps, by name.
        iters (int): Timed rounds.
        warmup (int): Untimed rounds first. Defaults to 0.
        device (torch.device, optional): A CUDA device to synchronise around
            every step. Defaults to None.

    Returns:
        dict[str, list[float]]: Per name, the seconds of its step in each
        timed round (``iters`` values).
    """
    times = {name: [] for name in steps}
    for round_ in range(warmup + iters):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def summarise(samples: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles, min and max of samples.

    Args:
        samples (Sequence[float]): At least one value.

    Returns:
        dict: ``median``, ``q1``, ``q3``, ``min``, ``max``.
    """
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) > 1 else [s[0]] * 3
    return dict(
        median=statistics.median(s), q1=q[0], q3=q[2], min=s[0], max=s[-1])


def ms_summary(seconds: Sequence[float]) -> Dict[str, Any]:
    """:func:`summarise` of times in milliseconds, with the ``samples``."""
    ms = [1e3 * t for t in seconds]
    return dict(summarise(ms), samples=ms)


def ratio_summary(numerator: Sequence[float],
                  denominator: Sequence[float]) -> Dict[str, float]:
    """:func:`summarise` of per-round ratios ``numerator[i] /
    denominator[i]`` (steps run back to back in round ``i``: robust to slow
    changes of the machine's load)."""
    return summarise([a / b for a, b in zip(numerator, denominator)])


def step_times(times: Mapping[str, Sequence[float]],
               images_per_step: int,
               reference: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Time per step, images per second and the ratio to a reference.

    Args:
        times (dict[str, list[float]]): Seconds per round, by name, from
            :func:`time_train_steps`.
        images_per_step (int): Images one step processes.
        reference (str, optional): The name the ratios are to. Defaults to
            the first name.

    Returns:
        dict[str, dict]: Per name: ``time_ms`` (:func:`ms_summary`),
        ``images_per_s`` (from the median) and ``time_ratio``
        (:func:`ratio_summary` to the reference, with its ``reference``).
    """
    reference = reference or next(iter(times))
    report = {}
    for name, seconds in times.items():
        time_ms = ms_summary(seconds)
        report[name] = dict(
            time_ms=time_ms,
            images_per_s=images_per_step / (time_ms['median'] / 1e3),
            time_ratio=dict(
                ratio_summary(seconds, times[reference]), reference=reference))
    return report


def profile_step(step: Step, device: torch.device, row_limit: int = 25) -> str:
    """The ``torch.profiler`` table of one step, by self time.

    Args:
        step (Step): The step.
        device (torch.device): Its device (CUDA: CUDA activity too).
        row_limit (int): Rows of the table. Defaults to 25.

    Returns:
        str: The table.
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        step()
        _sync(device)
    key = f'self_{device.type}_time_total'
    return prof.key_averages().table(sort_by=key, row_limit=row_limit)


# -------------------------------------------------------------------- FLOPs
class _LossOf(nn.Module):
    """``sum(model.loss([view_1, view_2]))``, for the jit tracer."""

    def __init__(self, model: BaseModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, view_1: torch.Tensor,
                view_2: torch.Tensor) -> torch.Tensor:
        return sum(self.model.loss([view_1, view_2], None).values())


def count_step_flops(model: BaseModel,
                     views: Sequence[torch.Tensor]) -> Dict[str, float]:
    """Multiply-adds of one training step of a self-supervised model, split
    by module.

    Counted by ``mmengine.analysis.FlopAnalyzer`` on a jit trace of
    ``model.loss(views)`` (on a copy: the trace may move a momentum target;
    1 FLOP = 1 multiply-add, the fvcore convention). The trained modules
    (``backbone``, ``neck``, ``head``) count forward + backward, the
    backward as twice the forward; the frozen ones (``target_net``,
    ``teacher``) and the rest (top-level no-grad work such as region
    matching) forward only.

    Args:
        model (BaseModel): The model.
        views (Sequence[Tensor]): Two views ``[B, 3, H, W]`` (float, as
            after the data preprocessor).

    Returns:
        dict[str, float]: ``trained_fwd``, ``target_fwd``, ``teacher_fwd``,
        ``other_fwd``, ``forward`` (all modules once) and ``step`` (``3 x
        trained + frozen + other``).
    """
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad():
        analyzer = FlopAnalyzer(_LossOf(copy.deepcopy(model)), tuple(views))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        by_module = analyzer.by_module()
    del analyzer
    gc.collect()
    total = by_module['']
    target = by_module.get('model.target_net', 0)
    teacher = by_module.get('model.teacher', 0)
    trained = sum(
        by_module.get(f'model.{name}', 0)
        for name in ('backbone', 'neck', 'head'))
    other = total - target - teacher - trained
    parts = dict(
        trained_fwd=trained,
        target_fwd=target,
        teacher_fwd=teacher,
        other_fwd=other,
        forward=total,
        step=3 * trained + target + teacher + other)
    return {k: float(v) for k, v in parts.items()}


# ------------------------------------------------------------------- memory
def _rss_bytes() -> int:
    """Resident set size of this process."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


class _RSSSampler(threading.Thread):
    """Peak resident set size of the process while running."""

    def __init__(self, interval: float = 2e-4) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = _rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def stop(self) -> int:
        """Stop sampling; return the peak in bytes."""
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, _rss_bytes())
        return self.peak


@contextlib.contextmanager
def _exact_rss() -> Iterator[Optional[ctypes.CDLL]]:
    """Make glibc give freed blocks of 128 KiB and more back to the OS at
    once (no dynamic mmap threshold), so that RSS follows live memory;
    yields libc (None where it is not glibc)."""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        yield None
        return
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    try:
        yield libc
    finally:  # glibc's defaults
        libc.mallopt(-3, 32 * 1024 * 1024)
        libc.mallopt(-1, 64 * 1024 * 1024)


def static_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the parameters, buffers and optimizer state (each storage
    counted once)."""
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    sizes = {}
    for t in tensors:
        sizes.setdefault(t.data_ptr(), t.numel() * t.element_size())
    return sum(sizes.values())


def measure_step_memory(step: Step,
                        model: nn.Module,
                        optimizer: torch.optim.Optimizer,
                        device: torch.device,
                        repeats: int = 2) -> Dict[str, float]:
    """Peak memory of a step, in MiB.

    On CUDA, ``max_memory_allocated`` over ``repeats`` steps. On CPU, the
    static tensor bytes (:func:`static_bytes`) plus the largest growth of
    the process RSS during one of ``repeats`` steps, sampled by a thread
    every 0.2 ms while glibc returns freed blocks of 128 KiB and more to
    the OS at once (``malloc_trim`` before each step).

    Args:
        step (Step): The step.
        model (nn.Module): Its model.
        optimizer (torch.optim.Optimizer): Its optimizer.
        device (torch.device): Its device.
        repeats (int): Steps measured. Defaults to 2.

    Returns:
        dict[str, float]: ``peak_mib``, ``static_mib`` and on CPU
        ``step_growth_mib``.
    """
    static = static_bytes(model, optimizer)
    if device.type == 'cuda':
        gc.collect()
        torch.cuda.empty_cache()
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            step()
        _sync(device)
        return dict(
            peak_mib=torch.cuda.max_memory_allocated(device) / _MIB,
            static_mib=static / _MIB)
    growth = 0
    with _exact_rss() as libc:
        for _ in range(repeats):
            gc.collect()
            if libc is not None:
                libc.malloc_trim(0)
            sampler = _RSSSampler()
            base = sampler.peak
            sampler.start()
            step()
            growth = max(growth, sampler.stop() - base)
    return dict(
        peak_mib=(static + growth) / _MIB,
        static_mib=static / _MIB,
        step_growth_mib=growth / _MIB)


# -------------------------------------------------------------- environment
def describe_environment(device: torch.device) -> Dict[str, Any]:
    """Versions, threads and the processor a measurement ran on.

    Args:
        device (torch.device): The measured device.

    Returns:
        dict: ``torch``, ``python``, ``device``, ``threads``, ``cpus`` and
        ``gpu`` (CUDA) or ``cpu`` (the CPU model name).
    """
    env = dict(
        torch=torch.__version__,
        python=platform.python_version(),
        device=str(device),
        threads=torch.get_num_threads(),
        cpus=os.cpu_count())
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
        return env
    env['cpu'] = platform.processor()
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:
        env['cpu'] = next((line.split(':', 1)[1].strip()
                           for line in f if line.startswith('model name')),
                          env['cpu'])
    return env
