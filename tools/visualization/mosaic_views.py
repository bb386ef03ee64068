"""Draw the mosaic views a MosRep config makes from your images.

Runs the config's training pipeline on a few images, assembles their 2x2
mosaics exactly as the model does (cell k of mosaic b holds local crop k
of image (b - k) mod B, then the jitter), and saves one PNG: a row per
mosaic, its cell boxes labelled with the source image and the weight
sqrt(visible fraction), then the source photos framed in the cell colours.

Example::

    python tools/visualization/mosaic_views.py \\
        configs/mosrep/mosrep_resnet18_cpu-64px_photos.py \\
        --images DIR --out mosaics.png
"""
import argparse
from typing import Optional, Sequence

from ediy_mm.analysis.mosaic_views import mosaic_views_figure
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument('config', help='a MosRep (or mosaic) config')
    parser.add_argument(
        '--images', help='image folder (default: the config\'s data)')
    parser.add_argument(
        '--batch-size', type=int, default=4, help='mosaics (images) drawn')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/mosaic_views.png')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return :func:`mosaic_views_figure`'s output."""
    args = parse_args(argv)
    result = mosaic_views_figure(args.config, args.out, args.batch_size,
                                 args.images, args.seed)
    for b, (boxes, sources, weights) in enumerate(
            zip(result['boxes'], result['sources'], result['weights'])):
        cells = '  '.join(
            f'{k}: img {s} box ({", ".join(f"{v:.0f}" for v in box)}) '
            f'w {w:.2f}'
            for k, (box, s, w) in enumerate(zip(boxes, sources, weights)))
        print(f'mosaic {b}: {cells}')
    for i, path in enumerate(result['paths']):
        print(f'img {i}: {path}')
    print(f'written: {result["file"]}')
    return result


if __name__ == '__main__':
    main()
