"""Load the backbone of a checkpoint for analysis.

The architecture comes from, in this order: the backbone config given
(``--config``: a training config's ``model.backbone``); the training
config that mmengine saves in its checkpoints (``meta['cfg']``), for the
online backbone; else the checkpoint is read as a plain ImageNet ResNet,
found by where its ``conv1.weight`` sits:

- ours and mmpretrain's (self-supervised or classifier): the backbone under
  ``backbone.`` inside ``state_dict``;
- torchvision's ResNets and extracted backbones: the backbone at the top
  level (``fc.*`` is ignored);
- any other prefix (``teacher.backbone.``, ``target_net.module.0.`` of an
  E-DIY checkpoint) when it is the only ResNet in the file, or when named.

Any mmpretrain backbone works (ResNet, ViT, Swin, ConvNeXt ...): it returns
its grid of cells (:func:`~ediy_mm.models.utils.backbone_grid.return_grid`:
a ViT's patch grid, not its cls token; a ConvNeXt's unpooled last stage).

Files are read with :func:`ediy_mm.utils.convert.load_checkpoint`
(mmengine's ``_load_checkpoint``): paths, URLs and
``torchvision://resnet50``-style names work, with ``weights_only`` loading
(``import ediy_mm`` allow-lists exactly what mmengine checkpoints hold).
"""
import os.path as osp
import re
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.utils import import_modules_from_strings
from mmpretrain.models import ResNet
from mmpretrain.registry import MODELS
from torch import nn

from ..models.utils.backbone_grid import return_grid
from ..utils.convert import extract_backbone, load_checkpoint

__all__ = [
    'IMAGENET_MEAN', 'IMAGENET_STD', 'FeatureExtractor', 'backbone_state',
    'infer_resnet_depth', 'load_backbone', 'load_backbones',
    'parse_checkpoint_spec', 'saved_backbone_config'
]

#: Mean and std of the RGB channels in [0, 1], as in mmpretrain's configs
#: (123.675, 116.28, 103.53) / 255 and torchvision.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BLOCK = re.compile(r'^layer(\d)\.(\d+)\.')


class FeatureExtractor(nn.Module):
    """A backbone that maps RGB images in ``[0, 1]`` to its last map.

    Normalises with the ImageNet mean and std (as mmpretrain's data
    preprocessor and torchvision do), then returns the last output of the
    backbone, the map whose cells are the regions (a ResNet's layer 4, a
    ViT's patch grid: :func:`~ediy_mm.models.utils.backbone_grid.
    return_grid` makes an mmpretrain backbone return it).

    Args:
        backbone (nn.Module): An mmpretrain backbone (returns a tuple of
            maps) or any module returning one map.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer('mean',
                             torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             False)
        self.register_buffer('std',
                             torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Last map ``[B, C, h, w]`` of images ``[B, 3, H, W]`` in [0, 1]."""
        out = self.backbone((images - self.mean) / self.std)
        out = out[-1] if isinstance(out, (tuple, list)) else out
        if out.dim() != 4:
            raise ValueError(
                f'{type(self.backbone).__name__} returned '
                f'{tuple(out.shape)}, not a map [B, C, h, w]: the analysis '
                'needs its grid of cells (return_grid(backbone) sets a ViT '
                "to out_type='featmap')")
        return out


def _find_prefix(state: Dict[str, torch.Tensor], checkpoint: str) -> str:
    """The key prefix of the only (or the online) ResNet of ``state``."""
    prefixes = [
        k[:-len('conv1.weight')] for k in state
        if k.endswith('conv1.weight') and k[:-len('conv1.weight')] +
        'layer1.0.conv1.weight' in state
    ]
    for preferred in ('backbone.', ''):
        if preferred in prefixes:
            return preferred
    if len(prefixes) == 1:
        return prefixes[0]
    if not prefixes:
        raise ValueError(
            f'{checkpoint!r} holds no ResNet (no conv1.weight beside '
            'layer1.0.conv1.weight) and no training config: for another '
            'backbone (ViT, Swin, ConvNeXt ...) give the config that '
            'trained it (--config)')
    raise ValueError(
        f'{checkpoint!r}: cannot tell which ResNet to load; found the '
        f'prefixes {prefixes or "none"} (a plain ResNet has conv1.weight '
        'and layer1.0.conv1.weight). Name one with --prefix.')


def _resnet_tensors(state: Dict[str, torch.Tensor], checkpoint: str,
                    prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """The ResNet tensors of a state dict under ``prefix`` (detected when
    None), keys without prefix, ``fc.*`` excluded."""
    if prefix is None:
        prefix = _find_prefix(state, checkpoint)
    found = {
        k: v
        for k, v in extract_backbone(state, prefix).state_dict.items()
        if not k.startswith('fc.')
    }
    if 'conv1.weight' not in found:
        raise ValueError(f'{checkpoint!r} has no {prefix}conv1.weight: not '
                         f'a ResNet under the prefix {prefix!r} (for '
                         'another backbone give its config)')
    return found


def backbone_state(checkpoint: str,
                   prefix: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The ResNet tensors of a checkpoint, keys without prefix.

    Args:
        checkpoint (str): Path, URL or ``torchvision://`` name.
        prefix (str, optional): Key prefix of the backbone, e.g.
            ``'backbone.'`` or ``'teacher.backbone.'``. Defaults to None:
            detected (see the module docstring).

    Returns:
        dict[str, Tensor]: The backbone's tensors, ``fc.*`` excluded.
    """
    content = load_checkpoint(checkpoint)
    return _resnet_tensors(
        content.get('state_dict', content), checkpoint, prefix)


def saved_backbone_config(content: dict) -> Optional[dict]:
    """The ``model.backbone`` of the training config that mmengine's Runner
    saves in its checkpoints (``meta['cfg']``).

    Args:
        content (dict): A checkpoint's content
            (:func:`~ediy_mm.utils.convert.load_checkpoint`).

    Returns:
        dict, optional: The backbone config, or None when the file has no
        training config (torchvision's files, extracted backbones).
    """
    meta = content.get('meta')
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'training_config.py')
        with open(path, 'w') as f:
            f.write(text)
        cfg = Config.fromfile(path, import_custom_modules=False)
    # the modules that registered the backbone, where this machine has them
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    import_modules_from_strings(imports, allow_failed_imports=True)
    backbone = cfg.get('model', {}).get('backbone')
    return None if backbone is None else backbone.to_dict()


def infer_resnet_depth(state: Dict[str, torch.Tensor]) -> int:
    """The depth (18, 34, 50, 101, 152) of a plain ResNet state dict.

    Args:
        state (dict[str, Tensor]): Backbone tensors, keys without prefix
            (``layer1.0.conv1.weight`` ...).

    Returns:
        int: The depth whose block type and block counts match.
    """
    blocks: List[set] = [set() for _ in range(4)]
    for key in state:
        match = _BLOCK.match(key)
        if match and 1 <= int(match.group(1)) <= 4:
            blocks[int(match.group(1)) - 1].add(int(match.group(2)))
    counts = tuple(len(b) for b in blocks)
    block = 'Bottleneck' if 'layer1.0.conv3.weight' in state else 'BasicBlock'
    for depth, (block_cls, stage_blocks) in ResNet.arch_settings.items():
        if block_cls.__name__ == block and tuple(stage_blocks) == counts:
            return depth
    raise ValueError(f'not a plain ResNet: {block} blocks per stage {counts}')


def load_backbone(checkpoint: str,
                  prefix: Optional[str] = None,
                  backbone: Optional[dict] = None) -> FeatureExtractor:
    """Build the backbone of a checkpoint and load it strictly, in eval
    mode.

    Args:
        checkpoint (str): Path, URL or ``torchvision://`` name.
        prefix (str, optional): Key prefix of the backbone; detected when
            None (``'backbone.'`` when the file has it, else none for a
            given or saved config; see the module docstring for a ResNet).
        backbone (dict, optional): The mmpretrain config of the backbone
            (e.g. the ``model.backbone`` of the config that trained it).
            None: the training config saved in the checkpoint, for the
            online backbone (``prefix`` None or ``'backbone.'``), else a
            plain ImageNet ResNet of the checkpoint's depth.

    Returns:
        FeatureExtractor: Maps images ``[B, 3, H, W]`` in [0, 1] to the
        backbone's last map ``[B, C, H / s, W / s]`` (``s`` its stride: 32
        for a ResNet's layer 4, the patch for a ViT's patch grid).
    """
    content = load_checkpoint(checkpoint)
    state = content.get('state_dict', content)
    if backbone is None and prefix in (None, 'backbone.'):
        backbone = saved_backbone_config(content)
    if backbone is None:
        weights = _resnet_tensors(state, checkpoint, prefix)
        depth = infer_resnet_depth(weights)
        name, model = f'ResNet-{depth}', ResNet(depth=depth, out_indices=(3, ))
    else:
        if prefix is None:
            prefix = 'backbone.' if any(
                k.startswith('backbone.') for k in state) else ''
        weights = extract_backbone(state, prefix).state_dict
        # SyncBN runs as BN in eval mode on any device
        name = backbone['type']
        model = return_grid(revert_sync_batchnorm(MODELS.build(backbone)))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f'{checkpoint!r} does not fit a {name}: {err}') from err
    return FeatureExtractor(model).eval()


def parse_checkpoint_spec(spec: str) -> Tuple[str, str]:
    """Split ``LABEL=CHECKPOINT``; the label defaults to a name of the file.

    Args:
        spec (str): ``LABEL=PATH`` or ``PATH`` (a URL may hold ``=`` after
            a ``/``).

    Returns:
        tuple[str, str]: The label and the checkpoint.
    """
    label, sep, path = spec.partition('=')
    if sep and label and not re.search(r'[/:\\]', label):
        return label, path
    stem = osp.splitext(osp.basename(spec.rstrip('/')))[0]
    parent = osp.basename(osp.dirname(spec))
    return (f'{parent}/{stem}' if parent else stem), spec


def load_backbones(
        specs: Sequence[str],
        prefix: Optional[str] = None,
        backbone: Optional[dict] = None) -> Dict[str, FeatureExtractor]:
    """Load several checkpoints given as ``[LABEL=]CHECKPOINT``.

    Args:
        specs (Sequence[str]): The checkpoints.
        prefix (str, optional): Key prefix for all of them; detected per
            file when None.
        backbone (dict, optional): Backbone config for all of them; per
            file (see :func:`load_backbone`) when None.

    Returns:
        dict[str, FeatureExtractor]: By label, in the given order.
    """
    models = {}
    for spec in specs:
        label, path = parse_checkpoint_spec(spec)
        if label in models:
            raise ValueError(f'two checkpoints are labelled {label!r}; '
                             'name them with LABEL=PATH')
        models[label] = load_backbone(path, prefix, backbone)
    return models
