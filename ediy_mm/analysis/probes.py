"""Frozen-feature probes of a backbone on a labelled image folder.

The labelled folders follow the ImageNet layout, ``ROOT/CLASS/image``
(mmpretrain's ``CustomDataset``, torchvision's ``ImageFolder``). Every
image is seen without augmentation: the centred square of
``CENTRE_FRACTION`` of its shorter side resized to ``size`` (the same view
as "resize the short side to ``size / 0.875``, centre-crop ``size``", the
view of :class:`~ediy_mm.engine.hooks.KNNMonitorHook`). The global feature
of an image is the average of the backbone's last map ``[C, h, w]``.

- **weighted kNN** (k 20, T 0.07): :func:`~ediy_mm.engine.hooks.
  weighted_knn` with the train split as memory bank;
- **linear probe**: multinomial logistic regression on the standardised
  global features, fitted to convergence by full-batch L-BFGS with an L2
  penalty chosen among :data:`WEIGHT_DECAYS` on a held-out fifth of the
  train split. The problem is convex and starts from zero, so the probe has
  no learning rate, no epochs and no seed to tune: two backbones are
  compared by their features only;
- **collapse indicators** of the global features: their effective rank
  across images (collapse -> 1) and the standard deviation of the unit
  features (SimSiam's indicator; about ``1`` for well spread features,
  ``0`` under collapse, scaled by ``sqrt(C)``).
"""
import math
import os
import os.path as osp
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..engine.hooks import topk_correct, weighted_knn
from .images import CropBox, center_box, crop_view, list_images, load_rgb
from .regions import effective_rank

__all__ = [
    'CENTRE_FRACTION', 'WEIGHT_DECAYS', 'ImageViews', 'LabelledImages',
    'choose_weight_decay', 'embed_images', 'fit_lbfgs', 'fit_probe',
    'global_collapse', 'knn_probe', 'labelled_splits', 'link_images',
    'linear_probe', 'list_labelled', 'standardise'
]

#: Side of the evaluated square, as a fraction of the shorter image side.
CENTRE_FRACTION = 0.875
#: L2 strengths (per mean loss) among which the probes choose.
WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class LabelledImages:
    """Images with their class index into ``classes``."""

    paths: Tuple[str, ...]
    labels: Tuple[int, ...]
    classes: Tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def per_class(self, limit: Optional[int]) -> 'LabelledImages':
        """The first ``limit`` images of each class (all when None)."""
        if limit is None:
            return self
        seen: Dict[int, int] = {}
        keep = []
        for path, label in zip(self.paths, self.labels):
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= limit:
                keep.append((path, label))
        return LabelledImages(
            tuple(p for p, _ in keep), tuple(lb for _, lb in keep),
            self.classes)

    def spread_classes(self, count: int) -> 'LabelledImages':
        """All the images of ``count`` classes spread evenly over the
        sorted classes (the first and the last included), relabelled
        ``0 .. count - 1``: an easier split of the same images."""
        if not 1 <= count <= len(self.classes):
            raise ValueError(f'count must be in [1, {len(self.classes)}], '
                             f'got {count}')
        kept = torch.linspace(0,
                              len(self.classes) - 1,
                              count).round().long().tolist()
        new_label = {old: new for new, old in enumerate(kept)}
        pairs = [(p, new_label[lb]) for p, lb in zip(self.paths, self.labels)
                 if lb in new_label]
        return LabelledImages(
            tuple(p for p, _ in pairs), tuple(lb for _, lb in pairs),
            tuple(self.classes[i] for i in kept))


def list_labelled(root: str) -> LabelledImages:
    """The images of the class folders of ``root``.

    Args:
        root (str): ``ROOT/CLASS/...image`` (images found recursively inside
            each class folder).

    Returns:
        LabelledImages: Classes sorted by folder name, images sorted by path.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'labelled folder {root!r} does not exist')
    classes = sorted(
        name for name in os.listdir(root) if osp.isdir(osp.join(root, name)))
    if not classes:
        raise FileNotFoundError(
            f'{root!r} has no class folder: labelled images must be laid '
            'out as ROOT/CLASS/image (ImageNet style)')
    paths: List[str] = []
    labels: List[int] = []
    for label, name in enumerate(classes):
        found = list_images(osp.join(root, name))
        paths += found
        labels += [label] * len(found)
    return LabelledImages(tuple(paths), tuple(labels), tuple(classes))


def _split_classes(images: LabelledImages, val_fraction: float,
                   seed: int) -> Dict[str, LabelledImages]:
    """Split each class of ``images`` into train and val at random."""
    rng = random.Random(seed)
    split: Dict[str, List[Tuple[str, int]]] = dict(train=[], val=[])
    for label, name in enumerate(images.classes):
        members = [
            p for p, lb in zip(images.paths, images.labels) if lb == label
        ]
        if len(members) < 2:
            raise ValueError(f'class {name!r} has {len(members)} image(s); '
                             'a train/val split needs at least 2 per class')
        rng.shuffle(members)
        num_val = min(
            max(round(val_fraction * len(members)), 1),
            len(members) - 1)
        split['val'] += [(p, label) for p in sorted(members[:num_val])]
        split['train'] += [(p, label) for p in sorted(members[num_val:])]
    return {
        name:
        LabelledImages(
            tuple(p for p, _ in pairs), tuple(lb for _, lb in pairs),
            images.classes)
        for name, pairs in split.items()
    }


def labelled_splits(root: str,
                    val_fraction: float = 0.2,
                    seed: int = 0) -> Dict[str, LabelledImages]:
    """The train and val splits of a labelled folder.

    ``ROOT/train/CLASS`` and ``ROOT/val/CLASS`` are used as they are when
    both exist (every val class must have a train folder; labels follow the
    train classes). Otherwise ``ROOT/CLASS`` is split within each class,
    ``val_fraction`` of the images (at least one, at most all but one) going
    to val.

    Args:
        root (str): The labelled folder.
        val_fraction (float): Share of each class for val when ``root`` has
            no train/val folders. Defaults to 0.2.
        seed (int): Seed of that split. Defaults to 0.

    Returns:
        dict[str, LabelledImages]: ``train`` and ``val``, same classes.
    """
    train_root, val_root = osp.join(root, 'train'), osp.join(root, 'val')
    if not (osp.isdir(train_root) and osp.isdir(val_root)):
        if not 0 < val_fraction < 1:
            raise ValueError(
                f'val_fraction must be in (0, 1), got {val_fraction}')
        return _split_classes(list_labelled(root), val_fraction, seed)
    train, val = list_labelled(train_root), list_labelled(val_root)
    unknown = sorted(set(val.classes) - set(train.classes))
    if unknown:
        raise ValueError(f'the val classes {unknown[:5]} of {val_root!r} '
                         f'have no folder in {train_root!r}')
    index = {name: i for i, name in enumerate(train.classes)}
    relabelled = tuple(index[val.classes[lb]] for lb in val.labels)
    return dict(
        train=train, val=LabelledImages(val.paths, relabelled, train.classes))


def link_images(images: LabelledImages, folder: str) -> str:
    """Lay ``images`` out as ``folder/CLASS/image`` with symbolic links.

    The folder is what mmpretrain's ``CustomDataset`` (and the kNN monitor)
    read. An existing folder is replaced.

    Args:
        images (LabelledImages): The images.
        folder (str): The folder to write.

    Returns:
        str: ``folder``.
    """
    if osp.isdir(folder):
        for class_dir in os.scandir(folder):
            for link in os.scandir(class_dir.path):
                os.remove(link.path)
            os.rmdir(class_dir.path)
    for i, (path, label) in enumerate(zip(images.paths, images.labels)):
        class_dir = osp.join(folder, images.classes[label])
        os.makedirs(class_dir, exist_ok=True)
        os.symlink(
            osp.abspath(path),
            osp.join(class_dir, f'{i:07d}_{osp.basename(path)}'))
    return folder


def centre_crop_box(width: int, height: int) -> CropBox:
    """The centred square of :data:`CENTRE_FRACTION` of the shorter side."""
    box = center_box(width, height)
    margin = (1 - CENTRE_FRACTION) * (box.x1 - box.x0) / 2
    return CropBox(box.x0 + margin, box.y0 + margin, box.x1 - margin,
                   box.y1 - margin)


class ImageViews(Dataset):
    """The evaluation views ``[3, size, size]`` in [0, 1] of images.

    Args:
        paths (Sequence[str]): Images.
        size (int): View side in pixels.
    """

    def __init__(self, paths: Sequence[str], size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        photo = load_rgb(self.paths[index])
        return crop_view(photo, centre_crop_box(*photo.size), self.size)


@torch.no_grad()
def embed_images(model: nn.Module,
                 dataset: Dataset,
                 batch_size: int = 128,
                 num_workers: int = 0,
                 pool: bool = True) -> torch.Tensor:
    """Run a frozen model over a data set of image tensors.

    Args:
        model (nn.Module): Images ``[B, 3, H, W]`` in [0, 1] to maps
            ``[B, C, h, w]`` (e.g. :func:`~ediy_mm.analysis.load_backbone`),
            in eval mode.
        dataset (Dataset): Items ``[3, H, W]`` (e.g. :class:`ImageViews`).
        batch_size (int): Images per forward pass. Defaults to 128.
        num_workers (int): Data loader workers. Defaults to 0.
        pool (bool): Average the maps over space. Defaults to True.

    Returns:
        Tensor: ``[N, C]`` (pooled) or ``[N, C, h, w]`` float32, on the
        CPU.
    """
    device = next(model.parameters(), torch.empty(0)).device
    out = []
    for images in DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers):
        maps = model(images.to(device)).float()
        out.append((maps.mean((2, 3)) if pool else maps).cpu())
    return torch.cat(out)


def knn_probe(train_feats: torch.Tensor,
              train_labels: torch.Tensor,
              val_feats: torch.Tensor,
              val_labels: torch.Tensor,
              num_classes: int,
              k: int = 20,
              temperature: float = 0.07) -> Dict[str, float]:
    """Weighted kNN top-1 / top-5 accuracy (%) of the val features.

    Args:
        train_feats (Tensor): Memory bank ``[N, C]``.
        train_labels (Tensor): LongTensor ``[N]``.
        val_feats (Tensor): Queries ``[Q, C]``.
        val_labels (Tensor): LongTensor ``[Q]``.
        num_classes (int): Number of classes.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.

    Returns:
        dict[str, float]: ``top1`` and ``top5`` in %.
    """
    scores = weighted_knn(train_feats, train_labels, val_feats, num_classes, k,
                          temperature)
    top1, top5 = (100 * topk_correct(scores, val_labels).float().mean(0))
    return dict(top1=top1.item(), top5=top5.item())


def standardise(train: torch.Tensor,
                *others: torch.Tensor,
                dim: int = 1) -> List[torch.Tensor]:
    """Centre and scale every channel by its train mean and std.

    Args:
        train (Tensor): ``[N, C, ...]``; channels along ``dim``.
        *others (Tensor): More tensors shaped like ``train`` but for ``N``.
        dim (int): The channel dimension. Defaults to 1.

    Returns:
        list[Tensor]: ``train`` and ``others``, standardised.
    """
    reduce = [d for d in range(train.dim()) if d != dim]
    mean = train.mean(reduce, keepdim=True)
    std = train.std(reduce, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, ) + others]


def fit_lbfgs(module: nn.Module,
              loss_fn: Callable[[], torch.Tensor],
              weight_decay: float,
              max_iter: int = 200) -> float:
    """Minimise ``loss_fn() + weight_decay / 2 * |weights|^2`` by L-BFGS.

    Full-batch L-BFGS with a strong-Wolfe line search. The penalty covers
    the parameters with more than one dimension (not the biases).

    Args:
        module (nn.Module): The parameters to fit, in place.
        loss_fn (Callable[[], Tensor]): The data loss, a scalar with
            gradients.
        weight_decay (float): L2 strength.
        max_iter (int): L-BFGS iterations. Defaults to 200.

    Returns:
        float: The final objective.
    """
    params = list(module.parameters())
    optimizer = torch.optim.LBFGS(
        params,
        lr=1,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn='strong_wolfe')

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn() + weight_decay / 2 * sum(
            (p**2).sum() for p in params if p.dim() > 1)
        loss.backward()
        return loss.detach()

    return float(optimizer.step(closure))


def choose_weight_decay(score: Callable[[float, torch.Tensor, torch.Tensor],
                                        float],
                        num_samples: int,
                        grid: Sequence[float] = WEIGHT_DECAYS,
                        holdout: float = 0.2,
                        seed: int = 0) -> Tuple[float, Dict[float, float]]:
    """The L2 strength whose probe scores best on held-out train samples.

    The train samples are split once at random (``seed``): ``holdout`` of
    them are held out, the probe of every strength of ``grid`` is fitted on
    the rest and scored on them. Ties go to the stronger penalty.

    Args:
        score (Callable[[float, Tensor, Tensor], float]): ``score(wd, fit,
            held)``: fit with L2 ``wd`` on the sample indices ``fit``
            (LongTensor), return the score (higher is better) on ``held``.
        num_samples (int): Train samples (>= 2).
        grid (Sequence[float]): Strengths tried. Defaults to
            :data:`WEIGHT_DECAYS`.
        holdout (float): Held-out share. Defaults to 0.2.
        seed (int): Seed of the split. Defaults to 0.

    Returns:
        tuple[float, dict[float, float]]: The chosen strength and the score
        of each.
    """
    if num_samples < 2:
        raise ValueError('choosing the L2 strength needs 2 train samples')
    order = torch.randperm(
        num_samples, generator=torch.Generator().manual_seed(seed))
    held = min(max(round(holdout * num_samples), 1), num_samples - 1)
    scores = {wd: score(wd, order[held:], order[:held]) for wd in grid}
    best = max(sorted(scores, reverse=True), key=scores.get)
    return best, scores


def fit_probe(fit: Callable[[torch.Tensor, torch.Tensor, float], nn.Module],
              score: Callable[[nn.Module, torch.Tensor, torch.Tensor], float],
              inputs: torch.Tensor, targets: torch.Tensor,
              weight_decay: Optional[float]) -> Tuple[nn.Module, float]:
    """Fit a probe on all train samples, its L2 strength given or chosen.

    Args:
        fit (Callable[[Tensor, Tensor, float], nn.Module]): ``fit(inputs,
            targets, wd)``: a probe fitted with L2 ``wd``.
        score (Callable[[nn.Module, Tensor, Tensor], float]): ``score(probe,
            inputs, targets)``, higher is better.
        inputs (Tensor): Train inputs ``[N, ...]``.
        targets (Tensor): Train targets ``[N, ...]``.
        weight_decay (float, optional): L2 strength; None: chosen by
            :func:`choose_weight_decay` with ``score``.

    Returns:
        tuple[nn.Module, float]: The probe and its L2 strength.
    """
    if weight_decay is None:
        weight_decay, _ = choose_weight_decay(
            lambda wd, kept, held: score(
                fit(inputs[kept], targets[kept], wd), inputs[held], targets[
                    held]), len(inputs))
    return fit(inputs, targets, weight_decay), weight_decay


def _top1(classifier: nn.Module, feats: torch.Tensor,
          labels: torch.Tensor) -> float:
    """Top-1 accuracy (fraction) of a classifier."""
    with torch.no_grad():
        return topk_correct(classifier(feats), labels,
                            (1, )).float().mean().item()


def linear_probe(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 val_feats: torch.Tensor,
                 val_labels: torch.Tensor,
                 num_classes: int,
                 weight_decay: Optional[float] = None,
                 max_iter: int = 200) -> Dict[str, float]:
    """Top-1 / top-5 accuracy (%) of a logistic regression probe.

    The features are standardised with the train statistics; the linear
    classifier starts from zero and is fitted by :func:`fit_lbfgs` on the
    mean cross-entropy of the train split, on the features' device.

    Args:
        train_feats (Tensor): ``[N, C]``.
        train_labels (Tensor): LongTensor ``[N]``.
        val_feats (Tensor): ``[Q, C]``.
        val_labels (Tensor): LongTensor ``[Q]``.
        num_classes (int): Number of classes.
        weight_decay (float, optional): L2 strength. Defaults to None:
            chosen by :func:`choose_weight_decay` (held-out top-1).
        max_iter (int): L-BFGS iterations. Defaults to 200.

    Returns:
        dict[str, float]: ``top1`` and ``top5`` in %, and the
        ``weight_decay`` used.
    """
    train_x, val_x = standardise(train_feats.float(), val_feats.float())

    def fit(feats: torch.Tensor, labels: torch.Tensor, wd: float) -> nn.Linear:
        classifier = nn.Linear(feats.size(1), num_classes).to(feats.device)
        nn.init.zeros_(classifier.weight)
        nn.init.zeros_(classifier.bias)
        fit_lbfgs(classifier,
                  lambda: F.cross_entropy(classifier(feats), labels), wd,
                  max_iter)
        return classifier

    classifier, weight_decay = fit_probe(fit, _top1, train_x,
                                         train_labels.to(train_x.device),
                                         weight_decay)
    with torch.no_grad():
        correct = topk_correct(classifier(val_x), val_labels.to(val_x.device))
    top1, top5 = 100 * correct.float().mean(0)
    return dict(top1=top1.item(), top5=top5.item(), weight_decay=weight_decay)


def global_collapse(feats: torch.Tensor) -> Dict[str, float]:
    """Collapse indicators of global features across images.

    Args:
        feats (Tensor): ``[N, C]``, ``N >= 2``.

    Returns:
        dict[str, float]: ``effective_rank`` of the ``N x C`` matrix of
        unit features (collapse -> 1, at most ``min(N, C)``) and
        ``feature_std``: the std over images of the unit features, averaged
        over channels, times ``sqrt(C)`` (collapse -> 0).
    """
    if feats.size(0) < 2:
        raise ValueError('collapse indicators need at least 2 images')
    unit = F.normalize(feats.double(), dim=1)
    rank = effective_rank(unit.T[None, :, :, None]).item()
    std = unit.std(0).mean().item() * math.sqrt(unit.size(1))
    return dict(effective_rank=rank, feature_std=std)
