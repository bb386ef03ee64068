"""Compare pre-training methods on your images, at an equal budget.

Pre-trains each method (BYOL, E-DIY with a BYOL teacher, E-DIY
teacher-free, MosRep, UniVIP where present, or your own configs) for the
same epochs (and optionally the same wall-clock minutes) on the same
images, then evaluates every frozen backbone with one protocol: weighted
kNN (k 20, T 0.07) and a linear probe on a labelled split, a dense 1x1
linear probe (mIoU) on a COCO-style json with masks, region diversity and
collapse indicators, and the time per step. Writes ``report.md``,
``results.{json,csv}``, ``probes.png`` and ``knn_curves.png`` to
``--work-dir``. Stop it at any time and run the same command again: what
is finished is kept, an interrupted training resumes.

Examples::

    # docs/study.md's CPU protocol (the small-image recipe, 3 seeds)
    python tools/analysis_tools/compare_methods.py --preset cpu-tinyin \\
        --data ../shared/datasets/tiny-imagenet-200-s150 \\
        --dense ../shared/datasets/coco-person-s400 --work-dir work_dirs/study
    # the first study of docs/study.md (ImageNet recipe, 51 min on 2 cores)
    python tools/analysis_tools/compare_methods.py \\
        --data ../shared/datasets/tiny-imagenet-200-s150 \\
        --dense ../shared/datasets/coco-person-s400 \\
        --methods random-init byol ediy ediy-teacherfree \\
        --size 64 --epochs 3 --batch-size 32 --pretrain-limit 960 \\
        --probe-train-per-class 10 --probe-val-per-class 5 \\
        --monitor-per-class 2 --dense-size 128 --diversity-images 32 \\
        --seeds 0 1 --workers 1 --threads 1 --work-dir work_dirs/study_cpu
    # your own config next to the built-in ones, 30 minutes each
    python tools/analysis_tools/compare_methods.py --data DATA \\
        --methods byol mine=configs/my_method.py --epochs 100 --minutes 30
"""
import argparse
import shlex
import sys
from typing import Optional, Sequence

import torch

from ediy_mm.analysis.compare import (METHODS, PRECISIONS, PRESETS, RECIPES,
                                      CompareSettings, compare_methods)
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument(
        '--preset',
        choices=PRESETS,
        help='a protocol of docs/study.md: its values become the defaults '
        '(the options given here win): ' +
        '; '.join(f'{n}: {p.description}' for n, p in PRESETS.items()))
    data = parser.add_argument_group('data')
    data.add_argument(
        '--data',
        required=True,
        help='labelled images: ROOT/{train,val}/CLASS/* or ROOT/CLASS/*')
    data.add_argument(
        '--pretrain-images',
        help='pre-training images, any layout, no labels needed (default: '
        'the labelled train split)')
    data.add_argument(
        '--pretrain-limit',
        type=int,
        help='pre-train on a random subset of this many images')
    data.add_argument(
        '--val-fraction',
        type=float,
        default=0.2,
        help='val share of each class when --data has no train/val folders')
    data.add_argument(
        '--dense',
        help='COCO-style folder with masks for the dense probe: '
        'annotations/instances_{train,val}*.json and {train,val}*/')
    run = parser.add_argument_group('methods and budget')
    run.add_argument(
        '--methods',
        nargs='+',
        default=[],
        help=f'NAME ({", ".join(METHODS)}) or NAME=CONFIG (default: all)')
    run.add_argument(
        '--epochs',
        type=int,
        default=10,
        help='epochs of every method (their schedules are stretched to it)')
    run.add_argument(
        '--minutes',
        type=float,
        help='wall-clock budget per training run (stops at the deadline '
        'with a checkpoint; the schedule stays planned for --epochs)')
    run.add_argument(
        '--size',
        type=int,
        default=128,
        help='pre-training crop and probe image side')
    run.add_argument(
        '--batch-size',
        type=int,
        help='batch of every method (lr scaled linearly; default: configs)')
    run.add_argument(
        '--repeat',
        type=int,
        default=1,
        help='times each pre-training image is listed per epoch')
    run.add_argument('--seeds', type=int, nargs='+', default=[0])
    run.add_argument(
        '--recipe',
        choices=RECIPES,
        default='cpu',
        help='configs of the named methods: cpu (ImageNet recipe, CPU '
        'sized) or small-image (CIFAR stem, 4 x 4 regions at 64 px)')
    run.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='fp32',
        help='training autocast dtype (bf16: CUDA only)')
    run.add_argument(
        '--channels-last',
        action='store_true',
        help='train in the channels-last memory format')
    run.add_argument(
        '--teacher',
        help="E-DIY's teacher checkpoint (default: this comparison's BYOL "
        'run of the same seed)')
    probes = parser.add_argument_group('probes')
    probes.add_argument(
        '--easy-classes',
        type=int,
        help='also probe N classes spread over the labelled ones with all '
        'their images (the kNN monitor uses them)')
    probes.add_argument('--probe-train-per-class', type=int)
    probes.add_argument('--probe-val-per-class', type=int)
    probes.add_argument(
        '--monitor-per-class',
        type=int,
        default=20,
        help='images per class and split for the kNN monitor')
    probes.add_argument(
        '--monitor-interval',
        type=int,
        default=1,
        help='kNN monitor every N epochs (0: off, no curves)')
    probes.add_argument(
        '--dense-size',
        type=int,
        default=224,
        help='image side of the dense probe and region statistics')
    probes.add_argument('--dense-limit', type=int)
    probes.add_argument('--diversity-images', type=int, default=64)
    probes.add_argument(
        '--linear-weight-decay',
        type=float,
        help='L2 of the linear probe (default: chosen on held-out train '
        'images among 1e-6 ... 1e-1)')
    probes.add_argument(
        '--dense-weight-decay', type=float, help='same, dense probe')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument(
        '--threads',
        type=int,
        help='torch CPU threads (1 is faster on a busy machine)')
    parser.add_argument('--work-dir', default='work_dirs/compare')
    preset = parser.parse_known_args(argv)[0].preset
    if preset:
        parser.set_defaults(**PRESETS[preset].options)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the comparison; return :func:`compare_methods`' output."""
    args = parse_args(argv)
    options = vars(args).copy()
    methods, seeds, work_dir, threads, _ = (
        options.pop(k)
        for k in ('methods', 'seeds', 'work_dir', 'threads', 'preset'))
    if threads:
        torch.set_num_threads(threads)
    command = shlex.join([sys.executable] +
                         ([sys.argv[0], *sys.argv[1:]] if argv is None else
                          ['tools/analysis_tools/compare_methods.py', *argv]))
    result = compare_methods(
        CompareSettings(**options), methods, seeds, work_dir, command)
    failed = [r for r in result['runs'] if r['status'] != 'ok']
    print(f'\nreport: {result["files"]["report"]}')
    for run in failed:
        print(f'  {run["method"]} seed {run["seed"]}: {run["status"]}: '
              f'{run["error"]}')
    return result


if __name__ == '__main__':
    sys.exit(1 if any(r['status'] != 'ok' for r in main()['runs']) else 0)
