"""Compute UniVIP's unsupervised instance proposals once, offline.

OpenCV's selective search on every image of a folder (or of a COCO-style
JSON), several processes, a progress bar; the boxes are filtered as the
UniVIP paper says (both sides >= --min-size px, aspect ratio in
[1/--max-aspect, --max-aspect], IoU <= --max-iou between kept boxes) and
written to one JSON that UniVIPDataset reads. Kill it and run the same
command again: finished images are not computed again. An image that
cannot be read is reported by name and skipped.

Examples::

    python tools/dataset_converters/univip_proposals.py data/coco/train2017 \\
        --coco data/coco/annotations/instances_train2017.json \\
        --out data/coco/univip_proposals_train2017.json --workers 16
    python tools/dataset_converters/univip_proposals.py my_photos \\
        --out my_photos_proposals.json --min-size 32 --max-side 512
"""
import argparse
import os
from typing import Optional, Sequence

from ediy_mm.datasets import list_images
from ediy_mm.datasets.univip_boxes import BoxRules
from ediy_mm.datasets.univip_proposals import (MODES, compute_proposals,
                                               list_coco_images)
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument('root', help='image folder (the dataset data_root)')
    parser.add_argument(
        '--coco',
        help='COCO-style JSON: only its images (file_name under root)')
    parser.add_argument('--out', required=True, help='proposal JSON to write')
    parser.add_argument(
        '--workers',
        type=int,
        default=os.cpu_count(),
        help='processes (default: all cores)')
    parser.add_argument(
        '--min-size',
        type=float,
        default=64,
        help='smallest box width and height, px (paper: 64; use less for '
        'small images, e.g. 64 x side / 500)')
    parser.add_argument('--max-aspect', type=float, default=3.)
    parser.add_argument('--max-iou', type=float, default=0.5)
    parser.add_argument('--mode', choices=MODES, default='fast')
    parser.add_argument(
        '--max-side',
        type=int,
        help='search on a copy at most this large (boxes scaled back)')
    parser.add_argument(
        '--max-boxes', type=int, help='keep at most this many per image')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return :func:`compute_proposals`'s summary."""
    args = parse_args(argv)
    rules = BoxRules(args.min_size, args.max_aspect, args.max_iou)
    files = (
        list_coco_images(args.coco) if args.coco else list_images(
            args.root, relative=True))
    summary = compute_proposals(
        args.root,
        files,
        args.out,
        rules,
        mode=args.mode,
        max_side=args.max_side,
        max_boxes=args.max_boxes,
        workers=args.workers,
        progress=not args.no_progress)
    print(f'{summary["images"]} images, {summary["boxes"]} boxes '
          f'({summary["boxes"] / max(summary["images"], 1):.1f} per image), '
          f'{len(summary["skipped"])} unreadable skipped: {args.out}')
    return summary


if __name__ == '__main__':
    main()
