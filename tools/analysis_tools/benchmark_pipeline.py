"""Data-pipeline benchmark: a config's training views, stock vs device path.

Runs, in one process and one run, on the same images in interleaved
rounds (``ediy_mm.analysis.pipeline_benchmark``): the decode alone (cv2, as
mmpretrain's ``LoadImageFromFile``; PIL, as the device path), mmpretrain's
stock two-view pipeline (``LoadImageFromFile`` + ``MultiView`` + every
augmentation on the CPU), and the device path (``DecodeMultiView``:
decode, crop and flip on the CPU; JPEG draft decoding on and off), and for
the packed stages the config's data preprocessor on each collated batch
(``PhotometricDataPreprocessor``: the colour jitter, grayscale, blur and
solarisation of the device path, here on the CPU). It reports images per
CPU-second (per core) and per wall second (per worker), each stage's rate
over the stock one, the device side's and the end-to-end CPU time per
augmented sample, and writes everything to ``--out`` (JSON). Run it with
one thread (the default) and ``nice`` on a shared machine.

Example::

    nice -n 5 python tools/analysis_tools/benchmark_pipeline.py \\
        configs/ediy/ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py \\
        --images data/coco/train2017 --rounds 10
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import torch
from mmengine.config import Config, DictAction
from mmengine.fileio import list_dir_or_file
from mmengine.registry import init_default_scope

import ediy_mm  # noqa: F401
from ediy_mm.analysis import pipeline_benchmark as bench
from ediy_mm.analysis.step_benchmark import describe_environment
from ediy_mm.utils.cli import doc_parser, write_json

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(
    ROOT, 'configs/ediy/ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py')
EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument(
        'config',
        nargs='?',
        default=DEFAULT_CONFIG,
        help='training config (default: the E-DIY ResNet-50 paper config)')
    parser.add_argument(
        '--images', required=True, help='folder of images (recursive)')
    parser.add_argument(
        '--batch', type=int, default=16, help='images per round')
    parser.add_argument('--rounds', type=int, default=8, help='timed rounds')
    parser.add_argument(
        '--warmup', type=int, default=1, help='rounds not counted')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch and OpenCV threads (default 1: per-core rates)')
    parser.add_argument('--out', help='JSON report path')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='config overrides, key=value')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the benchmark; return the report (also written as JSON)."""
    args = parse_args(argv)
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def run(args: argparse.Namespace) -> dict:
    """Measure, print and write the report."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    paths = sorted(
        osp.join(args.images, name) for name in list_dir_or_file(
            args.images,
            list_dir=False,
            suffix=EXTENSIONS + tuple(e.upper() for e in EXTENSIONS),
            recursive=True))
    if not paths:
        raise FileNotFoundError(f'no image in {args.images}')
    load_start = os.getloadavg()
    results = bench.time_pipelines(
        bench.pipeline_variants(cfg),
        paths,
        bench.build_preprocessor(cfg),
        batch_size=args.batch,
        rounds=args.rounds,
        warmup=args.warmup)
    env = describe_environment(torch.device('cpu'))
    report = dict(
        args=vars(args),
        environment=env,
        images=len(paths),
        loadavg_start=load_start,
        loadavg_end=os.getloadavg(),
        results=results,
        table=bench.format_table(results))
    print(f'{osp.basename(args.config)} on {len(paths)} images of '
          f'{args.images}; {env["cpu"]}, {args.threads} thread(s); '
          f'{args.rounds} rounds of {args.batch} images after '
          f'{args.warmup} warm-up; load average {load_start[0]:.2f} -> '
          f'{report["loadavg_end"][0]:.2f}')
    print(report['table'])
    out = args.out or osp.join(
        'work_dirs', 'benchmark_pipeline',
        f'{osp.splitext(osp.basename(args.config))[0]}.json')
    write_json(report, out)
    return report


if __name__ == '__main__':
    main()
