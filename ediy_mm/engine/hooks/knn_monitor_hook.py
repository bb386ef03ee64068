"""Online weighted kNN monitor of the backbone during pre-training."""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, HOOKS
from torch import nn

from ...models.utils.backbone_grid import global_feature

__all__ = ['KNNMonitorHook', 'topk_correct', 'weighted_knn']


def weighted_knn(bank: torch.Tensor,
                 bank_labels: torch.Tensor,
                 queries: torch.Tensor,
                 num_classes: int,
                 k: int = 20,
                 temperature: float = 0.07,
                 chunk_size: int = 1024) -> torch.Tensor:
    """Weighted kNN class scores (InstDisc, Wu et al. 2018; DINO).

    Each query's ``k`` nearest bank features by cosine similarity ``s`` vote
    for their label with weight ``exp(s / temperature)``.

    Args:
        bank (Tensor): Memory bank features ``[N, D]``.
        bank_labels (Tensor): LongTensor ``[N]`` in ``[0, num_classes)``.
        queries (Tensor): Query features ``[Q, D]``.
        num_classes (int): Number of classes.
        k (int): Neighbours (at most ``N`` are used). Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        chunk_size (int): Queries per similarity block (memory bound
            ``chunk_size x N``). Defaults to 1024.

    Returns:
        Tensor: Class scores ``[Q, num_classes]`` (float32).
    """
    bank = F.normalize(bank.float(), dim=1)
    queries = F.normalize(queries.float(), dim=1)
    k = min(k, bank.size(0))
    scores = []
    for chunk in queries.split(chunk_size):
        similarity, neighbours = (chunk @ bank.T).topk(k, dim=1)
        votes = torch.zeros(chunk.size(0), num_classes, device=chunk.device)
        votes.scatter_add_(1, bank_labels[neighbours],
                           (similarity / temperature).exp())
        scores.append(votes)
    return torch.cat(scores)


# yapf: disable (yapf splits this signature in a way flake8 rejects, E125)
def topk_correct(scores: torch.Tensor,
                 labels: torch.Tensor,
                 topk: Sequence[int] = (1, 5)) -> torch.Tensor:
    # yapf: enable
    """Whether each label is among the ``k`` best scores, for each ``k``.

    Args:
        scores (Tensor): ``[Q, num_classes]``.
        labels (Tensor): LongTensor ``[Q]``.
        topk (Sequence[int]): The ``k`` s (capped at ``num_classes``).
            Defaults to (1, 5).

    Returns:
        Tensor: BoolTensor ``[Q, len(topk)]``.
    """
    best = scores.topk(min(max(topk), scores.size(1)), dim=1).indices
    hits = best == labels[:, None]
    return torch.stack([hits[:, :k].any(1) for k in topk], dim=1)


def _gather_unique(*tensors: torch.Tensor) -> List[torch.Tensor]:
    """All-gather tensors whose last one is the sample indices and keep each
    sample once (a padded sampler repeats a few)."""
    gathered = [torch.cat(all_gather(t)) for t in tensors]
    indices, order = torch.sort(gathered[-1], stable=True)
    first = torch.ones_like(indices, dtype=torch.bool)
    first[1:] = indices[1:] != indices[:-1]
    keep = order[first]
    return [t[keep] for t in gathered]


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Weighted kNN accuracy of the backbone on a labelled folder pair.

    Every ``interval`` epochs (and after the last one) the online backbone
    embeds a labelled train folder (the memory bank) and a val folder (the
    queries) without augmentation: short side resized to
    ``image_size / 0.875``, centre crop ``image_size``, the model's own data
    preprocessor; the feature is the global average of the backbone's last
    map, or its last output as it is when that is already one vector per
    image (a ViT's cls token, a pooled ConvNeXt:
    :func:`~ediy_mm.models.utils.backbone_grid.global_feature`). Each val
    image is classified by :func:`weighted_knn` and top-1 /
    top-5 accuracies (%) go to the logger, the message hub and the
    visualizer backends (``scalars.json``, TensorBoard when configured) as
    ``knn/top1`` and ``knn/top5`` at the current iteration.

    Distributed: each rank embeds its shard of both folders
    (``DefaultSampler``); the bank is all-gathered, each rank classifies
    only its own val shard, and the per-image results are all-gathered
    (images the sampler padded are counted once). Every rank reports the
    same numbers.

    Folders follow mmpretrain's ``CustomDataset`` layout,
    ``ROOT/CLASS/image``; the class folders of ``val_root`` must exist in
    ``train_root`` (labels are matched by folder name). Example::

        custom_hooks = [
            dict(type='KNNMonitorHook', train_root='data/knn/train',
                 val_root='data/knn/val', interval=5)
        ]

    Args:
        train_root (str): Labelled folder of the memory bank.
        val_root (str): Labelled folder of the queries.
        interval (int): Evaluate every ``interval`` epochs. Defaults to 1.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        image_size (int): Centre-crop side. Defaults to 224.
        batch_size (int): Images per forward pass. Defaults to 64.
        num_workers (int): Data loader workers. Defaults to 2.
        before_train (bool): Also evaluate before training (the initial
            weights, or those resumed from). Defaults to False.
    """

    priority = 'NORMAL'

    def __init__(self,
                 train_root: str,
                 val_root: str,
                 interval: int = 1,
                 k: int = 20,
                 temperature: float = 0.07,
                 image_size: int = 224,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 before_train: bool = False) -> None:
        if interval < 1 or k < 1:
            raise ValueError(
                f'interval and k must be >= 1, got {interval}, {k}')
        self.roots = dict(train=train_root, val=val_root)
        self.interval = interval
        self.k = k
        self.temperature = temperature
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.evaluate_before_train = before_train
        self.loaders: Dict[str, torch.utils.data.DataLoader] = {}
        self.val_to_train = torch.zeros(0, dtype=torch.long)

    def _build_loader(self, root: str) -> torch.utils.data.DataLoader:
        """A non-shuffled, sharded, augmentation-free loader of ``root``."""
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(
                type='ResizeEdge',
                scale=round(self.image_size / 0.875),
                edge='short',
                backend='pillow',
                interpolation='bicubic'),
            dict(type='CenterCrop', crop_size=self.image_size),
            dict(type='PackInputs'),
        ]
        dataset = DATASETS.build(
            dict(type='CustomDataset', data_root=root, pipeline=pipeline))
        return Runner.build_dataloader(
            dict(
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                persistent_workers=False,
                sampler=dict(
                    type='DefaultSampler', shuffle=False, round_up=True),
                collate_fn=dict(type='default_collate'),
                dataset=dataset))

    def before_train(self, runner) -> None:
        """Build the two loaders; optionally evaluate the initial weights."""
        self.loaders = {
            split: self._build_loader(root)
            for split, root in self.roots.items()
        }
        train_classes = list(self.loaders['train'].dataset.CLASSES)
        val_classes = list(self.loaders['val'].dataset.CLASSES)
        unknown = sorted(set(val_classes) - set(train_classes))
        if unknown:
            raise ValueError(f'KNNMonitorHook: the val classes {unknown} of '
                             f'{self.roots["val"]!r} have no folder in '
                             f'{self.roots["train"]!r}')
        self.val_to_train = torch.tensor(
            [train_classes.index(name) for name in val_classes])
        if self.evaluate_before_train:
            self.evaluate(runner, epoch=runner.epoch)  # resumed: not 0

    def after_train_epoch(self, runner) -> None:
        """Evaluate every ``interval`` epochs and after the last."""
        if (self.every_n_epochs(runner, self.interval)
                or self.is_last_train_epoch(runner)):
            self.evaluate(runner, epoch=runner.epoch + 1)

    @torch.no_grad()
    def _embed(self, model: nn.Module,
               split: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features ``[m, C]``, labels ``[m]`` and dataset indices ``[m]`` of
        this rank's shard of ``split``."""
        feats, labels, indices = [], [], []
        for data in self.loaders[split]:
            inputs = model.data_preprocessor(data, False)['inputs']
            feature = global_feature(model.backbone(inputs)[-1])
            feats.append(F.normalize(feature.float(), dim=1))
            labels.append(
                torch.cat([s.gt_label for s in data['data_samples']]))
            indices.append(
                torch.tensor([s.sample_idx for s in data['data_samples']]))
        device = feats[0].device
        labels = torch.cat(labels).to(device)
        if split == 'val':
            labels = self.val_to_train.to(device)[labels]
        return torch.cat(feats), labels, torch.cat(indices).to(device)

    def evaluate(self, runner, epoch: int) -> Dict[str, float]:
        """Embed both folders, classify, report and return the accuracies.

        Args:
            runner (Runner): The runner.
            epoch (int): Epochs trained so far (for the log line).

        Returns:
            dict[str, float]: ``knn/top1`` and ``knn/top5`` in %.
        """
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        was_training = model.training
        model.eval()
        try:
            bank, bank_labels, bank_indices = _gather_unique(
                *self._embed(model, 'train'))
            queries, labels, indices = self._embed(model, 'val')
        finally:
            model.train(was_training)
        num_classes = len(self.loaders['train'].dataset.CLASSES)
        scores = weighted_knn(bank, bank_labels, queries, num_classes, self.k,
                              self.temperature)
        correct, _ = _gather_unique(
            topk_correct(scores, labels).float(), indices)
        top1, top5 = (100 * correct.mean(0)).tolist()
        metrics = {'knn/top1': top1, 'knn/top5': top5}
        for key, value in metrics.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(metrics, step=runner.iter)
        runner.logger.info(
            f'KNNMonitorHook epoch {epoch}: kNN top-1 {top1:.2f} %, top-5 '
            f'{top5:.2f} % (k={self.k}, T={self.temperature}, '
            f'{bank_indices.numel()} train / {correct.size(0)} val images, '
            f'{num_classes} classes)')
        return metrics
