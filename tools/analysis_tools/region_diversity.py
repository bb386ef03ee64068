"""Region diversity of the last feature map, checkpoints side by side.

The regions are the cells of the backbone's last map: a ResNet's layer 4,
a ViT's patch grid, a ConvNeXt's last stage.

For each image: the mean pairwise cosine similarity between its regions
(collapse -> 1), the effective rank of its region features (collapse -> 1)
and, on two overlapping crops, the fraction of regions whose nearest
neighbour in the other view is the geometrically corresponding region (see
:mod:`ediy_mm.analysis.regions`). Prints a table, writes
``region_diversity.{csv,json,png}`` to ``--out-dir``.

Example::

    python tools/analysis_tools/region_diversity.py \\
        byol=work_dirs/demo/teacher/epoch_2.pth \\
        ediy=work_dirs/demo/ediy/epoch_2.pth \\
        tv=torchvision://resnet50 --images data/my_photos
"""
import argparse
from typing import Optional, Sequence

from mmengine.config import Config

from ediy_mm.analysis import (STATISTICS, list_images, load_backbones,
                              region_diversity_report)
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument(
        'checkpoints',
        nargs='+',
        help='[LABEL=]CHECKPOINT: ours, mmpretrain (any backbone: the '
        'architecture is read from the training config saved in the '
        'checkpoint), torchvision (torchvision://resnet50) or an extracted '
        'backbone')
    parser.add_argument(
        '--images', help='image folder (default: scikit-image photos)')
    parser.add_argument(
        '--limit', type=int, help='use the first LIMIT images only')
    parser.add_argument(
        '--size', type=int, default=224, help='view side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='crop seed')
    parser.add_argument(
        '--prefix',
        help='key prefix of the backbone in every checkpoint (default: '
        'detected, the online backbone for E-DIY)')
    parser.add_argument(
        '--config',
        help='training config whose model.backbone is the architecture of '
        'every checkpoint (default: the one saved in each checkpoint, else '
        'a plain ResNet): needed for an extracted ViT, Swin or ConvNeXt')
    parser.add_argument('--out-dir', default='work_dirs/region_diversity')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return :func:`region_diversity_report`'s output."""
    args = parse_args(argv)
    backbone = (
        Config.fromfile(args.config).model.backbone.to_dict()
        if args.config else None)
    models = load_backbones(args.checkpoints, args.prefix, backbone)
    paths = list_images(args.images, args.limit)
    report = region_diversity_report(models, paths, args.out_dir, args.size,
                                     args.seed)
    print(f'{len(paths)} images, {args.size}px views, '
          f'{report["regions"]} regions per view')
    for name, description in STATISTICS.items():
        print(f'  {name}: {description}')
    print(f'  (nn_correspondence by chance: {1 / report["regions"]:.3f})\n')
    print(report['table'])
    print('\nwritten:', *report['files'], sep='\n  ')
    return report


if __name__ == '__main__':
    main()
