"""Training-step benchmark: mmpretrain's BYOL and E-DIY side by side.

Builds the models from their training configs: mmpretrain's BYOL
(``mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py``), E-DIY with
its frozen teacher (``configs/ediy/ediy_resnet50_*-300e_in1k.py``) and the
teacher-free E-DIY (``configs/ediy/ediy-teacherfree_*``), sized alike (depth,
widths, batch, input size; BN instead of SyncBN; one optimizer step per
step; the teacher a random backbone of ``--teacher-depth`` saved as its
checkpoint), and measures them in one process and one run
(``ediy_mm.analysis.step_benchmark``):

- the full training step (data already on the device: data preprocessor,
  forward, backward, optimizer step, momentum-target update), timed after
  warm-up in interleaved rounds (one step of every model per round):
  median, quartiles, min, max, and the ratio to BYOL within each round;
- the peak memory of a step: CUDA max allocated, or on CPU the static tensor
  bytes plus the growth of the process RSS during a step;
- the arithmetic of a step (``mmengine.analysis.FlopAnalyzer``, 1 FLOP = 1
  multiply-add): ``step = 3 x trained + frozen`` forward passes;
- the time of region matching + region losses alone (forward and backward
  down to the local maps, on the features of a real step), next to the
  step.

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
import os
import os.path as osp
import tempfile
from typing import Dict, Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from ediy_mm.analysis import step_benchmark as bench
from ediy_mm.models.heads import EDIYHead
from ediy_mm.utils.cli import doc_parser, write_json

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'byol':
    'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py',
    'ediy':
    osp.join(
        ROOT, 'configs/ediy/'
        'ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py'),
    'ediy-tf':
    osp.join(
        ROOT, 'configs/ediy/'
        'ediy-teacherfree_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py'),
}
LABELS = {
    'byol': 'BYOL (mmpretrain)',
    'ediy': 'E-DIY, teacher R-{t}',
    'ediy-tf': 'E-DIY, teacher-free',
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
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
        default=','.join(CONFIGS),
        help=f'comma-separated subset of {tuple(CONFIGS)}')
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
        help='model.teacher.dtype (default: the config\'s, i.e. follow the '
        'online autocast)')
    parser.add_argument(
        '--teacher-channels-last',
        action=argparse.BooleanOptionalAction,
        help='model.teacher.channels_last (default: the config\'s, on)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='further overrides of every model\'s config, key=value')
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
    if set(args.models) - set(CONFIGS) or not args.models:
        parser.error(f'--models takes names among {tuple(CONFIGS)}')
    args.teacher_depth = args.teacher_depth or args.depth
    return args


def load_configs(args: argparse.Namespace, folder: str) -> Dict[str, Config]:
    """The configs of ``args.models``, sized alike; the teacher a random
    backbone saved in ``folder``."""
    options = dict(
        bench.sized_options(args.depth, args.hid_channels, args.out_channels),
        **args.cfg_options)
    teacher = {
        'model.teacher.backbone.depth': args.teacher_depth,
        'model.teacher.dtype': args.teacher_dtype,
        'model.teacher.channels_last': args.teacher_channels_last,
    }
    cfgs = {}
    for name in args.models:
        cfg = cfgs[name] = bench.load_step_config(CONFIGS[name], options)
        if cfg.model.get('teacher') is None:
            continue
        cfg.merge_from_dict({
            k: v
            for k, v in teacher.items() if v is not None
        })
        cfg.model.teacher.checkpoint = bench.save_random_backbone(
            cfg.model.teacher.backbone,
            osp.join(folder, f'{name}_teacher.pth'),
            prefix=cfg.model.teacher.get('prefix', 'backbone.'),
            seed=args.seed + 1)
    return cfgs


def format_table(results: Dict[str, dict],
                 peak_tflops: Optional[float]) -> str:
    """The printed table; ratios are to the first model (BYOL)."""
    base = next(iter(results.values()))
    base_flops = base.get('flops', {}).get('step')
    base_mem = base.get('memory', {}).get('peak_mib')
    rows = [
        ('model', 'step ms', 'IQR ms', 'img/s', 'time x', 'IQR x', 'GMAC/step',
         'FLOP x', 'peak MiB', 'mem x', 'region ms', 'region %')
    ]

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
            ratio(flops, base_flops),
            f'{mem:.0f}' if mem else '-',
            ratio(mem, base_mem),
            f"{region['median']:.2f}" if region else '-',
            f"{100 * r['region_fraction']['median']:.2f}" if region else '-',
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        ' | '.join(c.ljust(w) for c, w in zip(row, widths)) for row in rows
    ]
    lines.insert(1, '-+-'.join('-' * w for w in widths))
    lines.append(
        f"time x: median over rounds of (step / {base['label']} step in the "
        'same round); FLOP x, mem x: ratios of the totals; GMAC: '
        'multiply-adds (mmengine counts 1 multiply-add as 1 FLOP)')
    if peak_tflops:
        lines.append('fraction of peak (2 FLOP per multiply-add): ' +
                     ', '.join(f"{r['label']} {r['peak_fraction']:.1%}"
                               for r in results.values()
                               if 'peak_fraction' in r))
    return '\n'.join(lines)


def measure(args: argparse.Namespace, device: torch.device) -> Dict[str, dict]:
    """Build every model and measure it; the results by model name."""
    amp_dtype = args.amp_dtype if args.amp else None
    with tempfile.TemporaryDirectory() as folder:
        built = {
            name:
            bench.build_step_model(
                cfg,
                device,
                seed=args.seed,
                channels_last=args.channels_last,
                compile_backbones=args.compile,
                amp_dtype=amp_dtype)
            for name, cfg in load_configs(args, folder).items()
        }
    batch = bench.synthetic_batch(
        args.batch, args.size, device, seed=args.seed)
    # Timed in interleaved rounds: every model's step, then its region step.
    steps, results = {}, {}
    for name, (model, optim_wrapper) in built.items():
        steps[name] = bench.make_train_step(model, optim_wrapper, batch,
                                            amp_dtype, args.channels_last)
        if isinstance(model.head, EDIYHead):
            steps[f'{name}/region'] = bench.make_region_loss_step(
                model, batch, amp_dtype, args.channels_last)
        results[name] = dict(
            label=LABELS[name].format(t=args.teacher_depth),
            config=CONFIGS[name],
            params_trained=sum(p.numel() for p in model.parameters()
                               if p.requires_grad))
        if not args.no_flops:
            try:
                results[name]['flops'] = bench.count_step_flops(
                    model,
                    bench.model_inputs(model, batch, False)[0])
            except Exception as e:  # noqa: BLE001  (report, do not stop)
                print(f'FLOP count of {name} failed: {e!r}')
    times = bench.time_train_steps(steps, args.iters, args.warmup, device)
    timings = bench.step_times({name: times[name]
                                for name in built}, args.batch)
    for name, r in results.items():
        r.update(timings[name])
        region = times.get(f'{name}/region')
        if region is not None:
            r.update(
                region_ms=bench.ms_summary(region),
                region_fraction=bench.ratio_summary(region, times[name]))
        if not args.no_memory:
            model, optim_wrapper = built[name]
            r['memory'] = bench.measure_step_memory(steps[name], model,
                                                    optim_wrapper.optimizer,
                                                    device)
        flops = r.get('flops', {}).get('step')
        if args.peak_tflops and flops:
            r['peak_fraction'] = (2 * flops / (r['time_ms']['median'] / 1e3) /
                                  (args.peak_tflops * 1e12))
    if args.profile:
        for name in built:
            print(f'\n== profile: {name}')
            print(bench.profile_step(steps[name], device))
    return results


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the benchmark; return the report (also written as JSON)."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    init_default_scope('mmpretrain')
    # The current logger: quiet (no init / paramwise option reports, no
    # 'frozen parameter skipped' notes).
    MMLogger.get_instance('benchmark_step', log_level='ERROR')
    load_start = os.getloadavg()
    try:
        results = measure(args, device)
        env = bench.describe_environment(device)
    finally:
        torch.set_num_threads(threads)
    report = dict(
        args=vars(args),
        environment=env,
        loadavg_start=load_start,
        loadavg_end=os.getloadavg(),
        results=results,
        table=format_table(results, args.peak_tflops))
    precision = f'autocast {args.amp_dtype}' if args.amp else 'fp32'
    print(f'ResNet-{args.depth}, {args.size}px, batch {args.batch} x 2 views,'
          f' {precision}{", channels-last" if args.channels_last else ""}'
          f'{", compiled" if args.compile else ""}, {device} '
          f'({env.get("gpu") or env["cpu"]}, {env["threads"]} threads), '
          f'{args.iters} rounds after {args.warmup} warm-up; load average '
          f'{load_start[0]:.2f} -> {report["loadavg_end"][0]:.2f}')
    print(report['table'])
    out = args.out or osp.join(
        'work_dirs', 'benchmark_step',
        f'r{args.depth}_{args.size}px_b{args.batch}_{device.type}'
        f'{"_amp" if args.amp else ""}.json')
    write_json(report, out)
    return report


if __name__ == '__main__':
    main()
