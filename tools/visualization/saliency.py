"""Fig. 1-style saliency maps of several checkpoints on the same images.

The saliency of a region is how much its layer-4 feature points along the
image's global (average-pooled) embedding: the Grad-CAM of
``||embedding||^2 / 2``, ``ReLU(<F_j, mean_z F_z>)``, divided by its
maximum (see :mod:`ediy_mm.analysis.saliency`). ``A`` is the salient
area, the fraction of regions at least half as salient as the peak: 1 when
every region is, ``1 / n`` when one region holds it all. Writes one PNG
grid: a row per image, a column per checkpoint.

Example::

    python tools/visualization/saliency.py \\
        byol=work_dirs/demo/teacher/epoch_2.pth \\
        ediy=work_dirs/demo/ediy/epoch_2.pth --out saliency.png
"""
import argparse
from typing import Optional, Sequence

import numpy as np

from ediy_mm.analysis import list_images, load_backbones, saliency_grid
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument(
        'checkpoints', nargs='+', help='[LABEL=]CHECKPOINT (any layout)')
    parser.add_argument(
        '--images', help='image folder (default: scikit-image photos)')
    parser.add_argument(
        '--limit', type=int, default=4, help='number of images (rows)')
    parser.add_argument(
        '--size', type=int, default=224, help='view side in pixels')
    parser.add_argument(
        '--prefix', help='key prefix of the backbone (default: detected)')
    parser.add_argument('--out', default='work_dirs/saliency.png')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return the salient areas (label -> ``[images]``)."""
    args = parse_args(argv)
    models = load_backbones(args.checkpoints, args.prefix)
    paths = list_images(args.images, args.limit)
    areas = saliency_grid(models, paths, args.out, args.size)
    print('salient area A: fraction of regions with >= 50 % of the peak '
          'saliency (1 = all regions, low = a few regions)')
    width = max(map(len, areas))
    for label, values in areas.items():
        per_image = ' '.join(f'{v:.3f}' for v in values)
        print(f'  {label.ljust(width)}  mean {np.nanmean(values):.3f}  '
              f'per image: {per_image}')
    print(f'written: {args.out}')
    return areas


if __name__ == '__main__':
    main()
