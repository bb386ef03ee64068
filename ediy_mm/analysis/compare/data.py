"""The images of a comparison: probe splits, the pre-training folder, the
kNN monitor's folders, the dense probe's splits and UniVIP's proposals."""
import glob
import os.path as osp
import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...datasets.univip_proposals import compute_proposals
from ..dense_probe import CocoMaskViews
from ..images import list_images
from ..probes import LabelledImages, labelled_splits, link_images
from .progress import ProgressMeter
from .settings import CompareSettings

__all__ = [
    'ComparisonData', 'compute_pretrain_proposals', 'find_coco_splits',
    'prepare_data', 'proposal_path'
]


@dataclass
class ComparisonData:
    """The images of a comparison.

    Attributes:
        probe (dict[str, LabelledImages]): ``train`` / ``val`` of the final
            probes.
        monitor_dirs (dict[str, str], optional): Labelled folders of the
            kNN monitor.
        pretrain_dir (str): Folder of the pre-training images (links).
        pretrain_count (int): How many.
        dense (dict[str, tuple[str, str]], optional): ``train`` / ``val``
            (json, image folder) of the dense probe.
        diversity_paths (list[str]): Images of the region statistics.
        easy (dict[str, LabelledImages], optional): ``train`` / ``val`` of
            the easy split (``easy_classes``), when there is one.
        proposal_file (str, optional): Selective-search proposals of the
            pre-training images, once a method needs them.
    """

    probe: Dict[str, LabelledImages]
    monitor_dirs: Optional[Dict[str, str]]
    pretrain_dir: str
    pretrain_count: int
    dense: Optional[Dict[str, Tuple[str, str]]]
    diversity_paths: List[str]
    easy: Optional[Dict[str, LabelledImages]] = None
    proposal_file: Optional[str] = None


def find_coco_splits(root: str) -> Dict[str, Tuple[str, str]]:
    """The train and val json and image folder of a COCO-style folder.

    Args:
        root (str): Holds ``annotations/instances_{train,val}*.json`` and
            one ``{train,val}*`` image folder each (e.g. ``val2017``),
            directly or in ``images/``.

    Returns:
        dict[str, tuple[str, str]]: Per split, (json, image folder).
    """
    splits = {}
    for split in ('train', 'val'):
        anns = sorted(
            glob.glob(
                osp.join(root, 'annotations', f'instances_{split}*.json')))
        dirs = sorted(
            d for pattern in (f'{split}*', f'images/{split}*')
            for d in glob.glob(osp.join(root, pattern)) if osp.isdir(d))
        if len(anns) != 1 or len(dirs) != 1:
            raise FileNotFoundError(
                f'--dense {root!r}: expected one annotations/instances_'
                f'{split}*.json and one {split}*/ image folder, found '
                f'{len(anns)} json ({[osp.basename(a) for a in anns]}) and '
                f'{len(dirs)} folders ({[osp.basename(d) for d in dirs]})')
        splits[split] = (anns[0], dirs[0])
    return splits


def spread(paths: Sequence[str], count: int) -> List[str]:
    """``count`` paths evenly spaced through ``paths`` (all if fewer)."""
    if len(paths) <= count:
        return list(paths)
    return [
        paths[i]
        for i in np.linspace(0,
                             len(paths) - 1, count).round().astype(int)
    ]


def prepare_data(settings: CompareSettings, work_dir: str) -> ComparisonData:
    """Check the images and lay out the folders the runs read.

    Writes, as symbolic links under ``work_dir/data``: ``pretrain/``,
    ``monitor/{train,val}/CLASS/`` (when monitoring).

    Args:
        settings (CompareSettings): The comparison.
        work_dir (str): Its work directory.

    Returns:
        ComparisonData: The images of each stage.
    """
    splits = labelled_splits(settings.data, settings.val_fraction)
    probe = dict(
        train=splits['train'].per_class(settings.probe_train_per_class),
        val=splits['val'].per_class(settings.probe_val_per_class))
    easy = None
    if settings.easy_classes:
        if settings.easy_classes > len(splits['train'].classes):
            raise ValueError(
                f'--easy-classes {settings.easy_classes}: --data '
                f'{settings.data!r} has {len(splits["train"].classes)} '
                'classes')
        easy = {
            split: images.spread_classes(settings.easy_classes)
            for split, images in splits.items()
        }
    if settings.linear_weight_decay is None and len(probe['train']) < 2:
        raise ValueError(
            f'--data {settings.data!r} gives {len(probe["train"])} probe '
            'train image(s); choosing the L2 strength needs 2: give '
            '--linear-weight-decay')
    pretrain = (
        list_images(settings.pretrain_images)
        if settings.pretrain_images else list(splits['train'].paths))
    if settings.pretrain_limit and settings.pretrain_limit < len(pretrain):
        pretrain = sorted(
            random.Random(0).sample(pretrain, settings.pretrain_limit))
    batch = settings.batch_size or 16
    if len(pretrain) * settings.repeat < batch:
        raise ValueError(f'{len(pretrain)} pre-training image(s) x --repeat '
                         f'{settings.repeat} make no full batch of {batch}')
    data_dir = osp.join(work_dir, 'data')
    pretrain_dir = link_images(
        LabelledImages(tuple(pretrain), (0, ) * len(pretrain), ('images', )),
        osp.join(data_dir, 'pretrain'))
    monitor_dirs = None
    if settings.monitor_interval:
        monitor_dirs = {
            split:
            osp.abspath(
                link_images(
                    images.per_class(settings.monitor_per_class),
                    osp.join(data_dir, 'monitor', split)))
            for split, images in (easy or probe).items()
        }
    dense = None
    diversity = list(probe['val'].paths)
    if settings.dense:
        dense = find_coco_splits(settings.dense)
        views = {
            split:
            CocoMaskViews(ann, img_dir, settings.dense_size,
                          settings.dense_size // 4, settings.dense_limit)
            for split, (ann, img_dir) in dense.items()
        }
        diversity = list(views['val'].paths)
        if settings.dense_weight_decay is None and len(views['train']) < 2:
            raise ValueError(
                f'--dense {settings.dense!r} has {len(views["train"])} train '
                'image(s); choosing the L2 strength needs 2: give '
                '--dense-weight-decay')
    return ComparisonData(probe, monitor_dirs, osp.abspath(pretrain_dir),
                          len(pretrain), dense,
                          spread(diversity, settings.diversity_images), easy)


def proposal_path(work_dir: str) -> str:
    """Where the proposals of the pre-training images go."""
    return osp.join(work_dir, 'data', 'proposals.json')


def compute_pretrain_proposals(data: ComparisonData, settings: CompareSettings,
                               work_dir: str, progress: ProgressMeter) -> str:
    """Selective search on the pre-training images (resumes; returns at
    once when done before)."""
    out_file = proposal_path(work_dir)
    files = [
        osp.relpath(p, data.pretrain_dir)
        for p in list_images(data.pretrain_dir)
    ]
    if 'proposals' in progress.costs:
        progress.update('proposals', 0,
                        f'selective search on {len(files)} images')
    compute_proposals(
        data.pretrain_dir,
        files,
        out_file,
        max_side=max(160, 2 * settings.size),
        workers=max(settings.workers, 1),
        progress=False)
    if 'proposals' in progress.costs:
        progress.update('proposals', 1, 'done')
    return out_file
