"""Regions chosen by a coarse teacher for a finer online grid, per option.

Compares E-DIY's ways of choosing regions when the teacher's map is
coarser than the online map (a ResNet teacher, 7x7 at 224 px, for a ViT/16,
14x14): a teacher of the online stride (the same weights with a dilated
layer 4), ``region_grid='interpolate'`` and ``region_grid='pool'``, on
pairs of overlapping crops of real photos (see
:mod:`ediy_mm.analysis.grid_mismatch`). Prints a Markdown table.

Example::

    python tools/analysis_tools/grid_mismatch.py \\
        --checkpoint work_dirs/demo/teacher/epoch_2.pth --images data/photos
"""
import argparse
from typing import Dict, Optional, Sequence

from ediy_mm.analysis import list_images
from ediy_mm.analysis.grid_mismatch import (compare_grid_options,
                                            format_grid_table,
                                            teacher_and_dilated)
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument(
        '--checkpoint',
        help='checkpoint holding the ResNet teacher (default: a randomly '
        'initialised ResNet of --depth)')
    parser.add_argument(
        '--depth',
        type=int,
        default=50,
        help='ResNet depth without a '
        'checkpoint')
    parser.add_argument(
        '--images', help='image folder (default: scikit-image photos)')
    parser.add_argument(
        '--limit', type=int, help='use the first LIMIT images only')
    parser.add_argument(
        '--size', type=int, default=224, help='view side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='crop seed')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    """Run the tool; return :func:`compare_grid_options`'s output."""
    args = parse_args(argv)
    teacher, dilated = teacher_and_dilated(args.checkpoint, args.depth,
                                           args.seed)
    paths = list_images(args.images, args.limit)
    results = compare_grid_options(teacher, dilated, paths, args.size,
                                   args.seed)
    print(f'{len(paths)} images, {args.size}px views, teacher '
          f'{args.checkpoint or f"ResNet-{args.depth} (random init)"}\n')
    print(format_grid_table(results))
    return results


if __name__ == '__main__':
    main()
