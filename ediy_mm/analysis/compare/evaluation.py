"""Evaluation of frozen backbones with the comparison's protocol: kNN and
linear probes, the dense probe, region diversity and collapse
indicators."""
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config

from ...models.utils.backbone_grid import return_grid
from ..backbones import FeatureExtractor
from ..dense_probe import dense_linear_probe, embed_dense, load_dense_split
from ..probes import (ImageViews, LabelledImages, embed_images,
                      global_collapse, knn_probe, linear_probe)
from ..regions import region_statistics
from .data import ComparisonData
from .settings import KNN_K, KNN_T, CompareSettings

__all__ = ['Evaluator', 'random_init_backbone']


class Evaluator:
    """Evaluates frozen backbones with the comparison's protocol; loads the
    dense probe's images once."""

    def __init__(self, settings: CompareSettings,
                 data: ComparisonData) -> None:
        self.settings = settings
        self.data = data
        self.dense_splits: Optional[dict] = None
        self.device = torch.device(
            'cuda' if torch.cuda.is_available() else 'cpu')

    def _dense_splits(self) -> dict:
        if self.dense_splits is None:
            self.dense_splits = {
                split:
                load_dense_split(
                    ann,
                    img_dir,
                    self.settings.dense_size,
                    limit=self.settings.dense_limit,
                    num_workers=self.settings.workers)
                for split, (ann, img_dir) in self.data.dense.items()
            }
        return self.dense_splits

    def _global_probes(self, model: FeatureExtractor,
                       split: Dict[str, LabelledImages]) -> tuple:
        """kNN and linear probe results on ``split`` (``train`` / ``val``),
        and the val features."""
        feats, labels = {}, {}
        for name, images in split.items():
            feats[name] = embed_images(
                model,
                ImageViews(images.paths, self.settings.size),
                num_workers=self.settings.workers).to(self.device)
            labels[name] = torch.tensor(images.labels, device=self.device)
        args = (feats['train'], labels['train'], feats['val'], labels['val'],
                len(split['train'].classes))
        knn = knn_probe(*args, k=KNN_K, temperature=KNN_T)
        linear = linear_probe(
            *args, weight_decay=self.settings.linear_weight_decay)
        return knn, linear, feats['val']

    def __call__(self, model: FeatureExtractor) -> Tuple[dict, dict]:
        """Metrics of a backbone, and details: the L2 strengths chosen, the
        dense probe's per-class IoU and baseline."""
        s, data = self.settings, self.data
        model = model.to(self.device).eval()
        knn, linear, val_feats = self._global_probes(model, data.probe)
        collapse = global_collapse(val_feats)
        metrics = dict(
            knn_top1=knn['top1'],
            knn_top5=knn['top5'],
            linear_top1=linear['top1'],
            linear_top5=linear['top5'],
            global_effective_rank=collapse['effective_rank'],
            feature_std=collapse['feature_std'])
        detail = dict(linear=dict(weight_decay=linear['weight_decay']))
        if data.easy:
            knn, linear, _ = self._global_probes(model, data.easy)
            metrics.update(
                easy_knn_top1=knn['top1'], easy_linear_top1=linear['top1'])
            detail['easy_linear'] = dict(weight_decay=linear['weight_decay'])
        if data.dense:
            splits = self._dense_splits()
            dense = detail['dense'] = dense_linear_probe(
                embed_dense(model, splits['train']).to(self.device),
                splits['train'].masks,
                embed_dense(model, splits['val']).to(self.device),
                splits['val'].masks, splits['train'].classes,
                s.dense_weight_decay)
            metrics.update(
                dense_miou=dense['miou'],
                dense_fg_iou=float(
                    np.nanmean(list(dense['iou'].values())[1:])))
        with torch.no_grad():
            regions = region_statistics(model.cpu(), data.diversity_paths,
                                        s.dense_size)
        metrics.update({
            f'region_{name}': float(np.nanmean(values))
            for name, values in regions.items()
        })
        return metrics, detail


def random_init_backbone(config: str, seed: int) -> FeatureExtractor:
    """The backbone of ``config``, initialised with ``seed``."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(seed)
    backbone = MODELS.build(Config.fromfile(config).model.backbone)
    backbone.init_weights()
    # its grid of cells, whatever the backbone (a ViT's patch grid)
    return FeatureExtractor(return_grid(backbone)).eval()
