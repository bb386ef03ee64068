"""kNN top-1 on a run's kNN-monitor images (centre crop at 64 px) with BN in
eval mode (running statistics) and in train mode (each batch's own
statistics), for a checkpoint and for a random initialisation of its
backbone (docs/study.md, "The smallest budget")::

    .venv/bin/python docs/study/budget-cpu/bn_check.py CHECKPOINT CONFIG \
        MONITOR_DIR
"""
import copy
import glob
import os.path as osp
import sys
from typing import List, Tuple

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import ediy_mm  # noqa: F401
from ediy_mm.analysis import load_backbone
from ediy_mm.analysis.backbones import FeatureExtractor
from ediy_mm.analysis.probes import ImageViews, embed_images, knn_probe
from ediy_mm.models.utils.backbone_grid import return_grid


def labelled(folder: str) -> Tuple[List[str], torch.Tensor]:
    """Images of ``folder/<class>/*`` and their class indices."""
    classes = sorted(glob.glob(osp.join(folder, '*')))
    paths, labels = [], []
    for index, name in enumerate(classes):
        images = sorted(glob.glob(osp.join(name, '*')))
        paths += images
        labels += [index] * len(images)
    return paths, torch.tensor(labels)


def knn_top1(model: torch.nn.Module, train_mode: bool, monitor: str) -> float:
    model = copy.deepcopy(model).train(train_mode)
    (bank, bank_labels), (queries, labels) = (
        labelled(osp.join(monitor, split)) for split in ('train', 'val'))
    feats = [
        embed_images(model, ImageViews(paths, 64), batch_size=100)
        for paths in (bank, queries)
    ]
    return knn_probe(feats[0], bank_labels, feats[1], labels,
                     int(bank_labels.max()) + 1)['top1']


def main(checkpoint: str, config: str, monitor: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    backbone = MODELS.build(Config.fromfile(config).model.backbone)
    backbone.init_weights()
    models = dict(
        random=FeatureExtractor(return_grid(backbone)).eval(),
        trained=load_backbone(checkpoint))
    for name, model in models.items():
        print(
            name, {
                mode: round(knn_top1(model, mode == 'train', monitor), 1)
                for mode in ('eval', 'train')
            })


if __name__ == '__main__':
    main(*sys.argv[1:4])
