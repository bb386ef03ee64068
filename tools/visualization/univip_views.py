"""Draw UniVIP's views for a few images of a folder: the two scene crops,
their overlap and the K instances in it.

Proposals come from a proposal file of
tools/dataset_converters/univip_proposals.py (--proposals, computed on the
same folder), else from selective search on the fly.

Example::

    python tools/visualization/univip_views.py data/coco/train2017 \\
        --proposals data/coco/univip_proposals_train2017.json --out v.png
"""
import argparse
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from ediy_mm.analysis import list_images
from ediy_mm.analysis.univip_views import univip_views_figure
from ediy_mm.datasets.photo_folder import DEFAULT_ROOT
from ediy_mm.datasets.univip_boxes import BoxRules
from ediy_mm.datasets.univip_dataset import read_proposal_file
from ediy_mm.utils.cli import doc_parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = doc_parser(__doc__)
    parser.add_argument(
        'folder', nargs='?', help="images (default: scikit-image's photos)")
    parser.add_argument('--proposals', help='proposal file of the folder')
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--num-instances', type=int, default=4, help='K')
    parser.add_argument('--min-size', type=float, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--max-side',
        type=int,
        default=512,
        help='selective search size for proposals computed on the fly')
    parser.add_argument('--out', default='work_dirs/univip_views.png')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """Run the tool; return :func:`univip_views_figure`'s output."""
    args = parse_args(argv)
    paths = list_images(args.folder, args.num_images)
    proposals = None
    if args.proposals:
        root = osp.expanduser(args.folder or DEFAULT_ROOT)
        proposals = {
            osp.join(root, image['file']):
            np.asarray(image['boxes']).reshape(-1, 4)
            for image in read_proposal_file(args.proposals)['images']
        }
    rows = univip_views_figure(
        paths,
        args.out,
        proposals,
        num_instances=args.num_instances,
        rules=BoxRules(min_size=args.min_size),
        seed=args.seed,
        max_side=args.max_side)
    for row in rows:
        print(f'{row["path"]}: {row["proposals"]} proposals, instances from '
              f'{row["source"]}')
    print(f'written: {rows[0]["file"]}')
    return rows


if __name__ == '__main__':
    main()
