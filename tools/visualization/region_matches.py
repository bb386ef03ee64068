"""Draw the regions a teacher picks for R-DEM and R-IEM on two views.

Two overlapping random crops of the image are the views. For a few query
regions q of view 1, the figure shows the region of view 1 the teacher
finds most different (D, eq. 4, pushed away by R-DEM), the region of view 2
it finds most similar (S, eq. 6, pulled in by R-IEM) and the region of
view 2 that shows the same place as q (G). A sensible teacher puts S on or
next to G, and D on another object or the background.

Example::

    python tools/visualization/region_matches.py \\
        work_dirs/demo/teacher/epoch_2.pth --image photo.jpg --out m.png
"""
import argparse
from typing import Optional, Sequence

from ediy_mm.analysis import list_images, load_backbone, region_match_figure
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument('teacher', help='teacher checkpoint (any layout)')
    parser.add_argument(
        '--image', help='image (default: the first of scikit-image\'s photos)')
    parser.add_argument(
        '--size', type=int, default=224, help='view side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='crop seed')
    parser.add_argument(
        '--queries',
        type=int,
        nargs='+',
        help='query regions of view 1 (row-major cells; default: spread '
        'over the overlap)')
    parser.add_argument(
        '--num-queries', type=int, default=3, help='default query count')
    parser.add_argument(
        '--prefix', help='key prefix of the backbone (default: detected)')
    parser.add_argument('--out', default='work_dirs/region_matches.png')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return :func:`region_match_figure`'s output."""
    args = parse_args(argv)
    teacher = load_backbone(args.teacher, args.prefix)
    image = args.image or list_images()[0]
    result = region_match_figure(teacher, image, args.out, args.size,
                                 args.seed, args.queries, args.num_queries)
    width = result['grid'][1]

    def cell(index: int) -> str:
        return '-' if index < 0 else '({}, {})'.format(*divmod(index, width))

    print(f'{image}: {result["grid"][0]}x{width} regions per view; '
          'cells as (row, col)')
    print('query   R-DEM most different (cos)   R-IEM most similar (cos)'
          '   same place')
    for k, query in enumerate(result['queries']):
        print(f'q{k + 1} {cell(query):8s} '
              f'D{k + 1} {cell(result["different"][k]):8s} '
              f'({result["cos_different"][k]:+.3f})          '
              f'S{k + 1} {cell(result["similar"][k]):8s} '
              f'({result["cos_similar"][k]:+.3f})       '
              f'G{k + 1} {cell(result["geometric"][k])}')
    chance = 100 / (width * result['grid'][0])
    print('R-IEM match = same place for '
          f'{100 * result["similar_is_geometric"]:.1f} % of the view-1 '
          f'regions inside view 2 (chance {chance:.1f} %)')
    print(f'written: {result["file"]}')
    return result


if __name__ == '__main__':
    main()
