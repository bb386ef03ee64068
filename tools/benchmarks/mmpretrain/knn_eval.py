"""Weighted k-NN evaluation of a frozen backbone (Wu et al., CVPR 2018).

mmpretrain 1.2.0 has no k-NN evaluation. This tool builds the config's
model, loads the checkpoint's backbone into it (strictly: a mismatch is an
error, not a warning), extracts the pooled features of the training set
(the memory bank) and the validation set with mmpretrain's
``FeatureExtractor``, and lets every validation image vote
(:func:`ediy_mm.engine.hooks.weighted_knn`): each of its k nearest training
images by cosine similarity ``s`` adds ``exp(s / T)`` to its class. Prints
top-1/top-5 accuracy for each k::

    python tools/benchmarks/mmpretrain/knn_eval.py \
        configs/benchmarks/mmpretrain/resnet50_knn_in1k.py \
        work_dirs/ediy/epoch_300.pth

It runs in one process, on the GPU when there is one. The memory bank of
ImageNet-1k takes 1.28M x 2048 floats (10 GB).
"""
import argparse
import json
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from mmpretrain import FeatureExtractor, get_model
from mmpretrain.utils import register_all_modules

from ediy_mm.engine.hooks import topk_correct, weighted_knn
from ediy_mm.utils.convert import extract_backbone, load_state_dict


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config with the model and the data')
    parser.add_argument('checkpoint', help='mmengine checkpoint to evaluate')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='prefix of the backbone in the checkpoint')
    parser.add_argument(
        '--k',
        type=int,
        nargs='+',
        default=[10, 20, 100, 200],
        help='numbers of neighbours')
    parser.add_argument(
        '--temperature', type=float, default=0.07, help='vote temperature')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device of the model and the memory bank')
    parser.add_argument('--out', help='also write the accuracies to a json')
    return parser.parse_args()


def build_extractor(cfg: Config, checkpoint: str, prefix: str,
                    device: str) -> FeatureExtractor:
    """The config's model with the checkpoint's backbone, in eval mode.

    Args:
        cfg (Config): Config whose ``model`` has the backbone and neck.
        checkpoint (str): Checkpoint path.
        prefix (str): Prefix of the backbone in the checkpoint.
        device (str): Device to run on.

    Returns:
        FeatureExtractor: mmpretrain's feature extraction inferencer.
    """
    model = get_model(cfg, pretrained=False)
    backbone = extract_backbone(load_state_dict(checkpoint), prefix)
    model.backbone.load_state_dict(backbone.state_dict, strict=True)
    print(f'loaded {len(backbone.renamed)} backbone tensors from '
          f'{checkpoint} (dropped {len(backbone.dropped)} other keys)')
    return FeatureExtractor(model, device=device)


def extract(extractor: FeatureExtractor,
            dataloader: Dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """Neck features and labels of a whole dataset.

    Args:
        extractor (FeatureExtractor): The model.
        dataloader (dict): Dataloader config.

    Returns:
        tuple[Tensor, Tensor]: Features ``[N, C]`` on the extractor's
        device and labels ``[N]``.
    """
    loader = Runner.build_dataloader(dataloader)
    device = next(extractor.model.parameters()).device
    feats: List[torch.Tensor] = []
    labels: List[torch.Tensor] = []
    progress = ProgressBar(len(loader.dataset))
    for batch in loader:
        outs = extractor.forward(batch, stage='neck')
        feats.append(torch.stack([out[-1].flatten() for out in outs]))
        labels += [sample.gt_label for sample in batch['data_samples']]
        progress.update(len(outs))
    print()
    return torch.cat(feats), torch.cat(labels).to(device)


def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor,
                 val_feats: torch.Tensor, val_labels: torch.Tensor,
                 ks: Sequence[int], temperature: float) -> Dict[str, float]:
    """Top-1/top-5 accuracy (%) of temperature-weighted k-NN votes.

    Args:
        train_feats (Tensor): Memory bank ``[N, C]``.
        train_labels (Tensor): Its labels ``[N]``.
        val_feats (Tensor): Queries ``[M, C]``.
        val_labels (Tensor): Their labels ``[M]``.
        ks (Sequence[int]): Numbers of neighbours.
        temperature (float): Temperature of the votes.

    Returns:
        dict[str, float]: ``'k{k}_top1'`` and ``'k{k}_top5'`` for each k.
    """
    num_classes = int(max(train_labels.max(), val_labels.max())) + 1
    results = {}
    for k in ks:
        scores = weighted_knn(train_feats, train_labels, val_feats,
                              num_classes, k, temperature)
        correct = topk_correct(scores, val_labels, topk=(1, 5))
        top1, top5 = (100 * correct.float().mean(0)).tolist()
        results.update({f'k{k}_top1': top1, f'k{k}_top5': top5})
    return results


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    extractor = build_extractor(cfg, args.checkpoint, args.prefix, args.device)
    train_feats, train_labels = extract(extractor, cfg.train_dataloader)
    val_feats, val_labels = extract(extractor, cfg.val_dataloader)
    results = knn_accuracy(train_feats, train_labels, val_feats, val_labels,
                           args.k, args.temperature)
    for name, value in results.items():
        print(f'{name}: {value:.2f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
