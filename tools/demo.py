"""`make demo`: pre-train a method on a CPU on real photos, then look at
what it learnt (the library: :func:`ediy_mm.analysis.demo.run_demo`).

``--method ediy`` (default) runs E-DIY's two stages: a BYOL ResNet-18, the
teacher, then E-DIY with it choosing the regions; then the training and kNN
curves, the regions the teacher picks for R-DEM / R-IEM, the saliency of
teacher and E-DIY side by side, and the region diversity table. The other
methods: ``mosrep``, ``mosrep-byol``, ``ediy-mosaic`` (mosaics of a batch)
and ``univip`` (selective-search proposals first, the views figure). The
photos are the ones scikit-image ships, unless ``--images`` names a folder.
"""
import argparse
import os.path as osp
import time
from typing import Optional, Sequence

METHODS = ('ediy', 'mosrep', 'mosrep-byol', 'ediy-mosaic', 'univip')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('\n', ' '))
    parser.add_argument('--method', choices=METHODS, default='ediy')
    parser.add_argument(
        '--images', help='a folder of images (default: scikit-image photos)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/demo',
        help='output folder (other methods than ediy: a sub-folder of it)')
    parser.add_argument(
        '--epochs', type=int, default=2, help='epochs of each stage (>= 2)')
    parser.add_argument(
        '--repeat',
        type=int,
        default=16,
        help='random crops drawn from each image per epoch')
    parser.add_argument(
        '--size', type=int, default=224, help='view side of the figures')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--skip-unreadable',
        action='store_true',
        help='leave out (naming each) the files of --images that cannot be '
        'read, instead of stopping')
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error('--epochs must be >= 2 (1 warm-up epoch + cosine)')
    return args


def summarise(out: dict, work_dir: str, elapsed: float) -> None:
    """Print where everything is and the headline numbers."""
    import numpy as np
    rule = '-' * 72
    print(f'\n{rule}\nDemo done in {elapsed / 60:.1f} min; everything is in '
          f'{work_dir}/\n{rule}')
    print('checkpoints (full training state):')
    for label, path in out['checkpoints'].items():
        print(f'  {label:16s} {path}')
    print('backbones only (tools/model_converters/extract_backbone.py; '
          "init_cfg=dict(type='Pretrained', checkpoint=...)):")
    for label, path in out['backbones'].items():
        print(f'  {label:16s} {path}')
    print('figures and tables:')
    for label, path in out['files'].items():
        print(f'  {label:24s} {path}')
    print('last logged values:')
    for label, values in out['curves'].items():
        print(f'  {label}: ' + ', '.join(f'{k} {v:.3f}'
                                         for k, v in values.items()))
    if 'areas' in out:
        print('salient area (fraction of regions >= half the peak '
              'saliency): ' + ', '.join(f'{label} {np.nanmean(a):.2f}'
                                        for label, a in out['areas'].items()))
    if 'report' in out:
        report = out['report']
        print('teacher R-IEM choice = same place for '
              f'{100 * out["matches"]["similar_is_geometric"]:.0f} % of the '
              f'regions (chance {100 / report["regions"]:.0f} %)')
        print(f'region diversity ({report["regions"]} regions per view):\n' +
              report['table'])


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    from ediy_mm.analysis.demo import run_demo  # --help answers at once
    work_dir = (
        args.work_dir if args.method == 'ediy' else osp.join(
            args.work_dir, args.method))
    start = time.time()
    out = run_demo(args.method, work_dir, args.images, args.epochs,
                   args.repeat, args.size, args.seed, args.skip_unreadable)
    summarise(out, work_dir, time.time() - start)


if __name__ == '__main__':
    main()
