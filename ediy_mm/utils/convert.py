"""Convert the backbone of an mmengine checkpoint to other formats.

The scripts in ``tools/model_converters/`` are thin wrappers of these
functions. Each conversion starts from the state dict of a checkpoint saved
by mmengine (an E-DIY, BYOL or any mmpretrain model), keeps the tensors
under one prefix (the online backbone, ``backbone.``) and renames them for
the target. It returns what it took and what it dropped, so that a user can
see that nothing they needed was left behind.

:func:`extract_backbone` works for any backbone (ViT, Swin, ConvNeXt ...);
the torchvision and detectron2 formats are ResNet names, so
:func:`to_torchvision` and :func:`to_detectron2` refuse another backbone
(:func:`require_resnet`).

mmpretrain's ResNet names its parameters exactly as torchvision's ResNet
does (``conv1``, ``bn1``, ``layer1.0.downsample.1`` ...), so the torchvision
format is the backbone's own state dict, and the detectron2 names follow
from torchvision's by the renaming of MoCo's
``convert-pretrain-to-detectron2.py``.
"""
import argparse
from collections import Counter, OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Tuple

import torch
import torchvision
from mmengine.runner.checkpoint import _load_checkpoint

__all__ = [
    'Conversion', 'converter_parser', 'detectron2_name', 'extract_backbone',
    'load_checkpoint', 'load_state_dict', 'require_resnet', 'to_detectron2',
    'to_torchvision'
]

#: Keys that every ResNet (torchvision's, mmpretrain's) has.
RESNET_KEYS = ('conv1.weight', 'layer1.0.conv1.weight')


class Conversion(NamedTuple):
    """The result of a conversion.

    Attributes:
        state_dict (OrderedDict[str, Tensor]): The converted tensors.
        renamed (list[tuple[str, str]]): ``(key in the checkpoint, key in
            the output)`` for every tensor taken from the checkpoint.
        added (list[str]): Output keys the checkpoint had nothing for.
        dropped (list[str]): Checkpoint keys left out of the output.
    """
    state_dict: 'OrderedDict[str, torch.Tensor]'
    renamed: List[Tuple[str, str]]
    added: List[str]
    dropped: List[str]

    def report(self) -> str:
        """Describe the conversion for the user: every key taken, every key
        added, and the dropped keys counted by their first name component.

        Returns:
            str: A multi-line report.
        """
        lines = [f'took {src} -> {dst}' for src, dst in self.renamed]
        lines += [f'added {key}' for key in self.added]
        groups = Counter(key.split('.')[0] for key in self.dropped)
        lines += [
            f'dropped {group}.* ({n} keys)' for group, n in groups.items()
        ]
        lines.append(f'took {len(self.renamed)} tensors, added '
                     f'{len(self.added)}, dropped {len(self.dropped)}')
        return '\n'.join(lines)


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint file without unpickling code.

    mmengine's loader calls :func:`torch.load`, which loads weights only on
    torch >= 2.6; the globals of mmengine's own checkpoints are allow-listed
    by :mod:`ediy_mm.utils.safe_checkpoint` (installed by ``import
    ediy_mm``), anything else is refused.

    Args:
        path (str): An mmengine checkpoint, a plain state dict file, a URL
            or a ``torchvision://`` name.

    Returns:
        dict: The file's content (an mmengine checkpoint holds
        ``state_dict`` and ``meta``, whose ``cfg`` is the training config).
    """
    return _load_checkpoint(path, map_location='cpu')


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read the state dict of a checkpoint without unpickling code (see
    :func:`load_checkpoint`).

    Args:
        path (str): An mmengine checkpoint or a plain state dict file.

    Returns:
        dict[str, Tensor]: Its ``state_dict`` entry, or the file itself
        when it is a plain state dict.
    """
    checkpoint = load_checkpoint(path)
    return checkpoint.get('state_dict', checkpoint)


def extract_backbone(state_dict: Mapping[str, torch.Tensor],
                     prefix: str = 'backbone.') -> Conversion:
    """Keep the tensors under ``prefix``, with the prefix removed.

    Args:
        state_dict (Mapping[str, Tensor]): The checkpoint's state dict.
        prefix (str): Prefix of the backbone to keep. Defaults to
            ``'backbone.'``, the online backbone of mmpretrain's models;
            ``''`` keeps everything.

    Returns:
        Conversion: The backbone's own state dict.

    Raises:
        ValueError: If no key starts with ``prefix``.
    """
    renamed = [(key, key[len(prefix):]) for key in state_dict
               if key.startswith(prefix)]
    if not renamed:
        groups = sorted({key.split('.')[0] + '.' for key in state_dict})
        raise ValueError(f'No key starts with {prefix!r}; the checkpoint has '
                         f'{groups}. Pass the right prefix.')
    dropped = [key for key in state_dict if not key.startswith(prefix)]
    backbone = OrderedDict((dst, state_dict[src]) for src, dst in renamed)
    return Conversion(backbone, renamed, [], dropped)


def require_resnet(state_dict: Mapping[str, torch.Tensor], prefix: str,
                   target: str) -> None:
    """Raise a clear error unless the backbone under ``prefix`` is a
    ResNet.

    Args:
        state_dict (Mapping[str, Tensor]): The checkpoint's state dict.
        prefix (str): Prefix of the backbone.
        target (str): The format asked for, for the message.

    Raises:
        ValueError: Naming the backbone's first keys and what to use.
    """
    if all(prefix + key in state_dict for key in RESNET_KEYS):
        return
    found = sorted({
        key[len(prefix):].split('.')[0]
        for key in state_dict if key.startswith(prefix)
    })
    raise ValueError(
        f'the backbone under {prefix!r} is not a ResNet (no '
        f'{prefix}{RESNET_KEYS[0]} and {prefix}{RESNET_KEYS[1]}; its '
        f'modules are {found[:8] or "none"}): the {target} format names '
        'ResNet layers only. For a ViT, Swin or ConvNeXt use '
        'tools/model_converters/extract_backbone.py, whose output loads '
        "into the same mmpretrain backbone (init_cfg=dict(type='Pretrained',"
        ' checkpoint=...)) in mmpretrain or mmdet.')


def to_torchvision(state_dict: Mapping[str, torch.Tensor],
                   prefix: str = 'backbone.',
                   arch: str = 'resnet50',
                   head_prefix: str = 'head.fc.') -> Conversion:
    """Convert to the state dict of ``torchvision.models.<arch>()``.

    torchvision's ResNet has a classifier ``fc``. It is taken from
    ``head_prefix`` when the checkpoint has one (an mmpretrain
    ``LinearClsHead``, e.g. after the linear probe); otherwise it is added
    as zeros for 1000 classes, since pre-training trains no classifier.

    Args:
        state_dict (Mapping[str, Tensor]): The checkpoint's state dict.
        prefix (str): Prefix of the backbone. Defaults to ``'backbone.'``.
        arch (str): Name of the torchvision ResNet constructor. Defaults to
            ``'resnet50'``.
        head_prefix (str): Prefix of a linear classifier to take as ``fc``.
            Defaults to ``'head.fc.'``.

    Returns:
        Conversion: A state dict that ``torchvision.models.<arch>()``
        loads with ``strict=True`` (checked before returning).

    Raises:
        ValueError: If the backbone is not a ResNet.
        RuntimeError: If torchvision's model does not load it strictly.
    """
    require_resnet(state_dict, prefix, 'torchvision')
    weights, renamed, added, dropped = extract_backbone(state_dict, prefix)
    head = [(key, 'fc.' + key[len(head_prefix):]) for key in dropped
            if key.startswith(head_prefix)]
    weights.update((dst, state_dict[src]) for src, dst in head)
    renamed += head
    dropped = [key for key in dropped if not key.startswith(head_prefix)]
    num_classes = weights['fc.weight'].shape[0] if head else 1000
    model = getattr(torchvision.models, arch)(num_classes=num_classes)
    if not head:
        added = ['fc.weight', 'fc.bias']
        weights.update(
            (key, torch.zeros_like(model.state_dict()[key])) for key in added)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise RuntimeError(
            f'The backbone under {prefix!r} is not a torchvision {arch}: '
            f'{err}') from err
    return Conversion(weights, renamed, added, dropped)


def detectron2_name(key: str) -> str:
    """Name a torchvision ResNet parameter as detectron2's ResNet does.

    The renaming of MoCo's ``convert-pretrain-to-detectron2.py``:
    ``conv1``/``bn1`` become ``stem.conv1``/``stem.conv1.norm``,
    ``layer1``-``layer4`` become ``res2``-``res5``, ``bnN`` becomes
    ``convN.norm`` and ``downsample.0``/``.1`` become
    ``shortcut``/``shortcut.norm``.

    Args:
        key (str): A torchvision ResNet key, e.g. ``'layer1.0.bn2.weight'``.

    Returns:
        str: The detectron2 key, e.g. ``'res2.0.conv2.norm.weight'``.
    """
    if not key.startswith('layer'):
        key = 'stem.' + key
    for stage in range(1, 5):
        key = key.replace(f'layer{stage}.', f'res{stage + 1}.')
    for conv in range(1, 4):
        key = key.replace(f'bn{conv}.', f'conv{conv}.norm.')
    key = key.replace('downsample.0.', 'shortcut.')
    return key.replace('downsample.1.', 'shortcut.norm.')


def to_detectron2(state_dict: Mapping[str, torch.Tensor],
                  prefix: str = 'backbone.') -> Tuple[dict, Conversion]:
    """Convert to the ``.pkl`` content detectron2's checkpointer reads.

    Args:
        state_dict (Mapping[str, Tensor]): The checkpoint's state dict.
        prefix (str): Prefix of the backbone. Defaults to ``'backbone.'``.

    Returns:
        tuple[dict, Conversion]: ``{'model': {name: ndarray},
        '__author__': 'ediy_mm', 'matching_heuristics': True}`` to pickle,
        and the conversion with detectron2's names.

    Raises:
        ValueError: If the backbone is not a ResNet.
    """
    require_resnet(state_dict, prefix, 'detectron2')
    conversion = extract_backbone(state_dict, prefix)
    renamed = [(src, detectron2_name(dst)) for src, dst in conversion.renamed]
    weights = OrderedDict((dst, state_dict[src]) for src, dst in renamed)
    model = {key: value.numpy() for key, value in weights.items()}
    content = dict(model=model, __author__='ediy_mm', matching_heuristics=True)
    return content, Conversion(weights, renamed, [], conversion.dropped)


def converter_parser(description: str) -> argparse.ArgumentParser:
    """The command line the converters share: ``SRC DST [--prefix P]``.

    Args:
        description (str): What the converter writes.

    Returns:
        argparse.ArgumentParser: A parser a converter may extend.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        'src', help='mmengine checkpoint, e.g. work_dirs/.../epoch_300.pth')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='prefix of the backbone in the checkpoint (the online '
        "backbone of mmpretrain models: 'backbone.')")
    return parser
