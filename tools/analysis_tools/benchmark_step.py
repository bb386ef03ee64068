"""Training-step benchmark: mmpretrain's BYOL and E-DIY side by side.

Builds mmpretrain's ``BYOL``, ``EDIY`` with an external frozen teacher and
the teacher-free ``EDIY`` (the momentum target's layer-4 maps choose the
regions) with the same backbone, batch, input size, precision and device,
and measures them in one process and one run:

- the full training step (data already on the device: data preprocessor,
  forward, backward, optimizer step, EMA update), timed after warm-up in
  interleaved rounds (one step of every model per round, so that a change of
  machine load hits all models alike): median, quartiles, min, max;
- the peak memory of a step: CUDA max allocated, or on CPU the static tensor
  bytes (parameters, buffers, optimizer state) plus the growth of the
  process RSS during a step (sampled by a thread; glibc is told to return
  freed blocks to the OS during that measurement);
- the arithmetic of a step, counted by ``mmengine.analysis.FlopAnalyzer``
  (1 FLOP = 1 multiply-add, the fvcore convention): forward of every module
  once, and the backward of the trained modules counted as twice their
  forward (``step = 3 x trained + frozen``);
- the time of region matching + region losses alone (forward and backward
  down to the local maps, on the maps of a real step), next to the step.

The table is printed and the numbers, every sample included, written to
``--out`` (JSON). No timing is asserted anywhere.

Examples::

    # 2-core CPU, ResNet-18 at 128 px
    python tools/analysis_tools/benchmark_step.py --depth 18 --size 128 \\
        --batch 16 --iters 8
    # CUDA, the paper's setting in bf16 (H100 SXM: 989 dense bf16 TFLOP/s)
    python tools/analysis_tools/benchmark_step.py --depth 50 --size 224 \\
        --batch 128 --amp --channels-last --teacher-dtype bfloat16 \\
        --teacher-channels-last --peak-tflops 989
"""
import argparse
import contextlib
import copy
import ctypes
import gc
import json
import os
import os.path as osp
import platform
import statistics
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import ediy_mm  # noqa: F401  (registers EDIY)

MODEL_NAMES = ('byol', 'ediy', 'ediy-tf')
LABELS = {
    'byol': 'BYOL (mmpretrain)',
    'ediy': 'E-DIY, teacher R-{t}',
    'ediy-tf': 'E-DIY, teacher-free',
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--depth', type=int, default=50, help='ResNet depth')
    parser.add_argument(
        '--teacher-depth',
        type=int,
        help='depth of the external teacher (default: --depth)')
    parser.add_argument('--batch', type=int, default=8, help='images/view')
    parser.add_argument('--size', type=int, default=224, help='view side')
    parser.add_argument(
        '--hid-channels', type=int, default=4096, help='projector width')
    parser.add_argument(
        '--out-channels', type=int, default=256, help='embedding width')
    parser.add_argument(
        '--models',
        default=','.join(MODEL_NAMES),
        help=f'comma-separated subset of {MODEL_NAMES}')
    parser.add_argument('--iters', type=int, default=10, help='timed rounds')
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='autocast the online and target networks (bf16 on CPU)')
    parser.add_argument(
        '--amp-dtype',
        default='bfloat16',
        choices=['bfloat16', 'float16'],
        help='autocast dtype with --amp')
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='online/target networks and inputs in channels-last')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the backbones (online, target, teacher)')
    parser.add_argument(
        '--teacher-dtype',
        choices=['float32', 'bfloat16', 'float16'],
        help='FrozenTeacher(dtype=...); default: follow the online autocast')
    parser.add_argument(
        '--teacher-channels-last',
        action='store_true',
        help='FrozenTeacher(channels_last=True)')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads')
    parser.add_argument(
        '--peak-tflops',
        type=float,
        help='the device\'s peak rate (dense TFLOP/s, 1 FLOP = 1 add or '
        '1 multiply) in the precision used: adds the fraction reached')
    parser.add_argument('--no-flops', action='store_true')
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='also print the torch.profiler table of one step per model')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--out',
        help='JSON file (default: work_dirs/benchmark_step/'
        'r{depth}_{size}px_b{batch}_{device}[_amp].json)')
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(',') if m.strip()]
    unknown = set(args.models) - set(MODEL_NAMES)
    if unknown or not args.models:
        parser.error(f'--models takes names among {MODEL_NAMES}')
    args.teacher_depth = args.teacher_depth or args.depth
    return args


# --------------------------------------------------------------- building
def _feat_channels(depth: int) -> int:
    return 512 if depth in (18, 34) else 2048


def _projector(in_channels: int, args, avg_pool: bool) -> dict:
    return dict(
        type='NonLinearNeck',
        in_channels=in_channels,
        hid_channels=args.hid_channels,
        out_channels=args.out_channels,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_avg_pool=avg_pool,
        norm_cfg=dict(type='BN1d'))


def model_configs(args, teacher_ckpt: Optional[str]) -> Dict[str, dict]:
    """Configs of the compared models: BYOL's recipe (single device, so BN
    instead of SyncBN), the same widths everywhere."""
    backbone = dict(
        type='ResNet',
        depth=args.depth,
        norm_cfg=dict(type='BN'),
        zero_init_residual=False)
    feat = _feat_channels(args.depth)
    preprocessor = dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True)
    predictor = _projector(args.out_channels, args, avg_pool=False)
    byol = dict(
        type='BYOL',
        data_preprocessor=preprocessor,
        backbone=backbone,
        neck=_projector(feat, args, avg_pool=True),
        head=dict(
            type='LatentPredictHead',
            predictor=predictor,
            loss=dict(type='CosineSimilarityLoss')))
    ediy = dict(
        type='EDIY',
        data_preprocessor=preprocessor,
        backbone=backbone,
        neck=dict(
            type='EDIYNeck',
            in_channels=feat,
            hid_channels=args.hid_channels,
            out_channels=args.out_channels,
            norm_cfg=dict(type='BN1d')),
        head=dict(type='EDIYHead', predictor=predictor))
    teacher = dict(
        source='checkpoint',
        checkpoint=teacher_ckpt,
        backbone=dict(
            type='ResNet',
            depth=args.teacher_depth,
            out_indices=(3, ),
            norm_cfg=dict(type='BN')),
        prefix='backbone.')
    if args.teacher_dtype:
        teacher['dtype'] = args.teacher_dtype
    if args.teacher_channels_last:
        teacher['channels_last'] = True
    return {
        'byol': byol,
        'ediy': dict(ediy, teacher=teacher),
        'ediy-tf': dict(ediy, teacher=dict(source='target')),
    }


def save_random_teacher(args, folder: str) -> str:
    """A randomly initialised teacher backbone saved as an mmpretrain
    checkpoint (the weights do not change the cost)."""
    torch.manual_seed(args.seed + 1)
    backbone = MODELS.build(
        dict(
            type='ResNet',
            depth=args.teacher_depth,
            out_indices=(3, ),
            norm_cfg=dict(type='BN')))
    path = osp.join(folder, f'teacher_r{args.teacher_depth}.pth')
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in backbone.state_dict().items()
        }), path)
    return path


def optim_wrapper_config(args, device: torch.device) -> dict:
    """BYOL's LARS recipe (mmpretrain's config)."""
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(
            type='LARS', lr=4.8, momentum=0.9, weight_decay=1e-6),
        paramwise_cfg=dict(
            custom_keys={
                'bn': dict(decay_mult=0, lars_exclude=True),
                'bias': dict(decay_mult=0, lars_exclude=True),
                'downsample.1': dict(decay_mult=0, lars_exclude=True),
            }))
    if args.amp and device.type == 'cuda':
        cfg.update(type='AmpOptimWrapper', dtype=args.amp_dtype)
    return cfg


def build(args, name: str, cfg: dict, device: torch.device):
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg)
    model.init_weights()
    model.to(device)
    if args.channels_last:
        # The teacher keeps its own format (``--teacher-channels-last``).
        for module in (model.backbone, model.neck, model.head,
                       model.target_net):
            module.to(memory_format=torch.channels_last)
    model.train()
    if args.compile:
        backbones = [model.backbone, model.target_net.module[0]]
        if getattr(model, 'teacher', None) is not None:
            backbones.append(model.teacher.backbone)
        for backbone in backbones:
            backbone.compile()
    optim_wrapper = build_optim_wrapper(
        model, optim_wrapper_config(args, device))
    return model, optim_wrapper


# ------------------------------------------------------------------ steps
def amp_context(args, device: torch.device) -> Callable:
    """Autocast with ``--amp`` (mmengine's AmpOptimWrapper is CUDA-only; on
    CUDA it autocasts the step too, and nesting the same autocast is
    harmless; the region step needs it)."""
    if args.amp:
        return lambda: torch.autocast(
            device.type, dtype=getattr(torch, args.amp_dtype))
    return contextlib.nullcontext


def make_batch(args, device: torch.device) -> dict:
    """Two uint8 views already on the device, as the dataloader gives."""
    g = torch.Generator().manual_seed(args.seed)
    views = [
        torch.randint(
            0, 256, (args.batch, 3, args.size, args.size),
            generator=g,
            dtype=torch.uint8).to(device) for _ in range(2)
    ]
    return dict(
        inputs=views, data_samples=[DataSample() for _ in range(args.batch)])


def make_step(model, optim_wrapper, batch: dict, args,
              device: torch.device) -> Callable[[], None]:
    """``BaseModel.train_step`` (what the Runner calls), with the inputs
    turned channels-last after the preprocessor when asked."""
    amp = amp_context(args, device)
    fmt = torch.channels_last if args.channels_last else None

    def step() -> None:
        with optim_wrapper.optim_context(model), amp():
            data = model.data_preprocessor(batch, True)
            inputs = data['inputs']
            if fmt is not None:
                inputs = [x.contiguous(memory_format=fmt) for x in inputs]
            losses = model(inputs, data['data_samples'], mode='loss')
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)

    return step


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _region_losses(head, online_global, online_local, target_local, guide):
    """The region terms of ``head.loss`` (matching included), weighted."""
    if hasattr(head, 'region_losses'):
        return head.region_losses(online_global, online_local, target_local,
                                  guide)
    losses = {}  # heads without ``region_losses`` (before the refactor)
    if head.lambda_rdem > 0:
        losses['loss_rdem'] = head.lambda_rdem * head._rdem(
            online_global, online_local, guide)
    if head.lambda_riem > 0:
        losses['loss_riem'] = head.lambda_riem * head._riem(
            online_local, target_local, guide)
    return losses


def make_region_step(model, batch: dict, args,
                     device: torch.device) -> Callable[[], None]:
    """Region matching + region losses alone, forward and backward down to
    the online local maps, on the head inputs of a real step."""
    captured = {}
    head = model.head
    original = head.loss

    def record(*a, **k):
        captured['args'] = a
        return original(*a, **k)

    head.loss = record
    amp = amp_context(args, device)
    fmt = torch.channels_last if args.channels_last else None
    try:
        with torch.no_grad(), amp():
            data = model.data_preprocessor(batch, True)
            inputs = data['inputs']
            if fmt is not None:
                inputs = [x.contiguous(memory_format=fmt) for x in inputs]
            model(inputs, data['data_samples'], mode='loss')
    finally:
        del head.loss
    online_global, _, online_local, target_local, guide = captured['args']

    def detach(pair):
        return None if pair is None else tuple(x.detach() for x in pair)

    online_global, target_local = detach(online_global), detach(target_local)
    guide, online_local = detach(guide), detach(online_local)

    def step() -> None:
        local = tuple(x.requires_grad_() for x in online_local)
        with amp():
            losses = _region_losses(head, online_global, local, target_local,
                                    guide)
        torch.autograd.grad(sum(losses.values()), local)
        for x in local:
            x.requires_grad_(False)

    return step


# ------------------------------------------------------------------ FLOPs
class _LossOf(torch.nn.Module):
    """Calls ``model.loss`` on two views, for the jit tracer."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, view_1, view_2):
        return sum(self.model.loss([view_1, view_2], None).values())


def count_flops(model, args, device: torch.device) -> Dict[str, float]:
    """Multiply-adds of one training step, split by module."""
    from mmengine.analysis import FlopAnalyzer
    model = copy.deepcopy(model)  # the trace runs an EMA update
    views = tuple(
        torch.randn(args.batch, 3, args.size, args.size, device=device)
        for _ in range(2))
    with torch.no_grad():
        analyzer = FlopAnalyzer(_LossOf(model), views)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        by_module = analyzer.by_module()
    total = by_module['']
    frozen = by_module.get('model.target_net', 0) + by_module.get(
        'model.teacher', 0)
    trained = sum(
        by_module.get(f'model.{name}', 0)
        for name in ('backbone', 'neck', 'head'))
    rest = total - frozen - trained  # no-grad matching at the top level
    parts = dict(
        trained_fwd=trained,
        target_fwd=by_module.get('model.target_net', 0),
        teacher_fwd=by_module.get('model.teacher', 0),
        other_fwd=rest,
        forward=total,
        step=3 * trained + frozen + rest)
    del model, analyzer
    gc.collect()
    return {k: float(v) for k, v in parts.items()}


# ----------------------------------------------------------------- memory
class _RSSSampler(threading.Thread):
    """Peak resident set size of the process while running."""

    def __init__(self, interval: float = 2e-4) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, rss_bytes())
        return self.peak


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _libc():
    try:
        return ctypes.CDLL('libc.so.6')
    except OSError:
        return None


@contextlib.contextmanager
def _exact_rss():
    """Make glibc give freed blocks of 128 KiB and more back to the OS at
    once (no dynamic mmap threshold), so that RSS follows live memory."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    try:
        yield libc
    finally:
        if libc is not None:
            libc.mallopt(-3, 32 * 1024 * 1024)
            libc.mallopt(-1, 64 * 1024 * 1024)


def static_bytes(model, optim_wrapper) -> int:
    seen, total = set(), 0
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optim_wrapper.optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    for t in tensors:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def measure_memory(step, model, optim_wrapper, device: torch.device,
                   repeats: int = 2) -> Dict[str, float]:
    """Peak memory of a step, in MiB."""
    mib = 2.**20
    if device.type == 'cuda':
        gc.collect()
        torch.cuda.empty_cache()
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            step()
        sync(device)
        return dict(
            peak_mib=torch.cuda.max_memory_allocated(device) / mib,
            static_mib=static_bytes(model, optim_wrapper) / mib)
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
    static = static_bytes(model, optim_wrapper)
    return dict(
        peak_mib=(static + growth) / mib,
        static_mib=static / mib,
        step_growth_mib=growth / mib)


# ----------------------------------------------------------------- timing
def summary(samples: List[float]) -> Dict[str, float]:
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) > 1 else [s[0]] * 3
    return dict(
        median=statistics.median(s), q1=q[0], q3=q[2], min=s[0], max=s[-1])


def time_interleaved(steps: Dict[str, Callable], args,
                     device: torch.device) -> Dict[str, List[float]]:
    times = {name: [] for name in steps}
    for r in range(args.warmup + args.iters):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            if r >= args.warmup:
                times[name].append(time.perf_counter() - start)
    return times


def profile_step(name: str, step: Callable, device: torch.device) -> None:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        step()
        sync(device)
    key = ('self_cuda_time_total'
           if device.type == 'cuda' else 'self_cpu_time_total')
    print(f'\n== profile: {name}')
    print(prof.key_averages().table(sort_by=key, row_limit=25))


# ------------------------------------------------------------------- main
def environment(device: torch.device) -> dict:
    env = dict(
        torch=torch.__version__,
        python=platform.python_version(),
        device=str(device),
        threads=torch.get_num_threads(),
        cpus=os.cpu_count())
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
    else:
        try:
            with open('/proc/cpuinfo') as f:
                env['cpu'] = next(
                    line.split(':', 1)[1].strip() for line in f
                    if line.startswith('model name'))
        except (OSError, StopIteration):
            env['cpu'] = platform.processor()
    return env


def format_table(results: dict, args) -> str:
    """The printed table; ratios are to the first model (BYOL)."""
    base = next(iter(results.values()))
    rows = [('model', 'step ms', 'IQR ms', 'img/s', 'time x', 'IQR x',
             'GMAC/step', 'FLOP x', 'peak MiB', 'mem x', 'region ms',
             'region %')]

    def ratio(a, b):
        return f'{a / b:.3f}' if a is not None and b else '-'

    for r in results.values():
        t, tr = r['time_ms'], r['time_ratio']
        flops = r.get('flops', {}).get('step')
        mem = r.get('memory', {}).get('peak_mib')
        region = r.get('region_ms')
        rows.append((
            r['label'],
            f"{t['median']:.1f}",
            f"{t['q1']:.0f}-{t['q3']:.0f}",
            f"{r['images_per_s']:.1f}",
            f"{tr['median']:.3f}",
            f"{tr['q1']:.2f}-{tr['q3']:.2f}",
            f'{flops / 1e9:.1f}' if flops else '-',
            ratio(flops, base.get('flops', {}).get('step')),
            f'{mem:.0f}' if mem else '-',
            ratio(mem, base.get('memory', {}).get('peak_mib')),
            f"{region['median']:.2f}" if region else '-',
            f"{100 * r['region_fraction']['median']:.2f}" if region else '-',
        ))
        if args.peak_tflops and flops:
            r['peak_fraction'] = (2 * flops / (t['median'] / 1e3) /
                                  (args.peak_tflops * 1e12))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        ' | '.join(c.ljust(w) for c, w in zip(row, widths)) for row in rows
    ]
    lines.insert(1, '-+-'.join('-' * w for w in widths))
    lines.append(
        f"time x: median over rounds of (step / {base['label']} step in the "
        'same round); FLOP x, mem x: ratios of the totals; GMAC: '
        'multiply-adds (mmengine counts 1 multiply-add as 1 FLOP)')
    if args.peak_tflops:
        lines.append('fraction of peak (2 FLOP per multiply-add): ' +
                     ', '.join(f"{r['label']} {r['peak_fraction']:.1%}"
                               for r in results.values()
                               if 'peak_fraction' in r))
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the benchmark; return the report (also written as JSON)."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    init_default_scope('mmpretrain')
    # The current logger: quiet (no init / paramwise option reports, no
    # 'frozen parameter skipped' notes).
    MMLogger.get_instance('benchmark_step', log_level='ERROR')
    # CosineEMA reads the schedule length from the message hub.
    MessageHub.get_current_instance().update_info('max_iters', 10000)
    load_start = os.getloadavg()
    tmp = tempfile.TemporaryDirectory()
    teacher_ckpt = (
        save_random_teacher(args, tmp.name) if 'ediy' in args.models else
        None)
    cfgs = model_configs(args, teacher_ckpt)
    batch = make_batch(args, device)

    models, steps, results = {}, OrderedDict(), OrderedDict()
    for name in args.models:
        model, optim_wrapper = build(args, name, cfgs[name], device)
        models[name] = (model, optim_wrapper)
        steps[name] = make_step(model, optim_wrapper, batch, args, device)
        results[name] = dict(
            label=LABELS[name].format(t=args.teacher_depth),
            params_trained=sum(p.numel() for p in model.parameters()
                               if p.requires_grad))
        if not args.no_flops:
            try:
                results[name]['flops'] = count_flops(model, args, device)
            except Exception as e:  # noqa: BLE001  (report, do not stop)
                print(f'FLOP count of {name} failed: {e!r}')
    region_steps = {
        name: make_region_step(models[name][0], batch, args, device)
        for name in steps if name != 'byol'
    }

    # Interleaved rounds: every model's step, then its region step.
    timed = OrderedDict()
    for name, step in steps.items():
        timed[name] = step
        if name in region_steps:
            timed[f'{name}/region'] = region_steps[name]
    times = time_interleaved(timed, args, device)

    base = args.models[0]
    for name in steps:
        ms = [1e3 * t for t in times[name]]
        results[name]['time_ms'] = summary(ms)
        results[name]['time_ms']['samples'] = ms
        results[name]['images_per_s'] = args.batch / (
            results[name]['time_ms']['median'] / 1e3)
        # Ratios within a round (the models ran back to back there): robust
        # to slow changes of the machine's load.
        results[name]['time_ratio'] = summary(
            [a / b for a, b in zip(times[name], times[base])])
        results[name]['time_ratio']['reference'] = base
        if name in region_steps:
            ms = [1e3 * t for t in times[f'{name}/region']]
            results[name]['region_ms'] = summary(ms)
            results[name]['region_ms']['samples'] = ms
            results[name]['region_fraction'] = summary([
                a / b for a, b in zip(times[f'{name}/region'], times[name])
            ])
    if not args.no_memory:
        for name, step in steps.items():
            model, optim_wrapper = models[name]
            results[name]['memory'] = measure_memory(step, model,
                                                     optim_wrapper, device)
    if args.profile:
        for name, step in steps.items():
            profile_step(name, step, device)

    report = dict(
        args=vars(args),
        environment=environment(device),
        loadavg_start=load_start,
        loadavg_end=os.getloadavg(),
        results=results)
    table = format_table(results, args)
    report['table'] = table
    precision = (f'autocast {args.amp_dtype}' if args.amp else 'fp32')
    env = report['environment']
    print(f'ResNet-{args.depth}, {args.size}px, batch {args.batch} x 2 views,'
          f' {precision}{", channels-last" if args.channels_last else ""}'
          f'{", compiled" if args.compile else ""}, {device} '
          f'({env.get("gpu") or env["cpu"]}'
          f', {torch.get_num_threads()} threads), {args.iters} rounds after '
          f'{args.warmup} warm-up; load average {load_start[0]:.2f} -> '
          f'{report["loadavg_end"][0]:.2f}')
    print(table)
    out = args.out or osp.join(
        'work_dirs', 'benchmark_step',
        f'r{args.depth}_{args.size}px_b{args.batch}_{device.type}'
        f'{"_amp" if args.amp else ""}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'written {out}')
    tmp.cleanup()
    return report


if __name__ == '__main__':
    main()
