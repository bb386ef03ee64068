"""MosRep (Wang et al., ICLR 2023, "Mosaic Representation Learning for
Self-supervised Visual Pre-training",
https://openreview.net/forum?id=JAezPMehaUu) on MoCo v2, as its authors
released it (``moco/builder.py``, ``pretrain_mosrep.sh``), and on BYOL."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_dist_info
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..losses.ediy_losses import byol_loss
from ..losses.mosrep_losses import mosaic_byol_loss, mosrep_contrastive_loss
from ..utils.backbone_grid import check_patch_fit
from ..utils.momentum_target import MomentumTargetMixin
from ..utils.mosaic import Mosaic, MosaicSampler, split_views

__all__ = ['MosaicSelfSupervisor', 'MosRep', 'MosRepBYOL', 'rank_offset']


def rank_offset(batch_size: int) -> int:
    """Index of this process's first image among the gathered ones.

    Every process must hold the same number of images (``all_gather``
    concatenates equal blocks in rank order); the check costs one tiny
    collective.

    Args:
        batch_size (int): Images in this process's batch.

    Returns:
        int: ``rank * batch_size`` (0 without DDP).

    Raises:
        ValueError: When the processes' batch sizes differ.
    """
    rank, world_size = get_dist_info()
    if world_size == 1:
        return 0
    sizes = [int(s) for s in all_gather(torch.tensor([batch_size]))]
    if len(set(sizes)) != 1:
        raise ValueError(
            f'the processes hold batches of {sizes} images: MosRep gathers '
            'keys in equal blocks; use drop_last=True or a sampler that '
            'gives every process the same batch size')
    return rank * batch_size


class MosaicSelfSupervisor(MomentumTargetMixin, BaseSelfSupervisor):
    """What MosRep and its BYOL variant share: the momentum target of
    backbone and neck (:class:`MomentumTargetMixin`, moved once per
    optimizer step), and the
    mosaic view
    (:class:`~ediy_mm.models.utils.mosaic.MosaicSampler`) embedded by the
    online backbone, RoIAlign and the neck.

    Args:
        backbone (dict): Online backbone config (its last map is used).
        neck (dict): Projector config; it embeds ``(map,)`` tuples of any
            spatial size (whole views and 7x7 RoI cells).
        momentum (float): Target momentum ``1 - m`` at the start.
        end_momentum (float): Target momentum at the end (cosine).
        mosaic (dict, optional): :class:`MosaicSampler` arguments.
        pretrained (str, optional): Checkpoint for the whole model.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 momentum: float,
                 end_momentum: float,
                 mosaic: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.mosaic = MosaicSampler(**(mosaic or {}))
        self.build_momentum_target(momentum, end_momentum)

    def extract_feat(self, inputs: Union[torch.Tensor, List[torch.Tensor]],
                     **kwargs) -> tuple:
        """Backbone maps of the (first) view."""
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        return self.backbone(inputs)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Online projection of whole views.

        Args:
            images (Tensor): ``[B, 3, H, W]``.

        Returns:
            Tensor: ``[B, D]``.
        """
        check_patch_fit(self.backbone, images, 'the global views')
        return self.neck(self.backbone(images))[0]

    def embed_cells(self, mosaic: Mosaic) -> torch.Tensor:
        """Online projection of every mosaic cell: backbone on the mosaics,
        RoIAlign over the cell boxes, projector.

        Args:
            mosaic (Mosaic): The batch's mosaics.

        Returns:
            Tensor: ``[B*K, D]``, ordered as ``mosaic.sources.flatten()``.
        """
        cells = self.mosaic.cell_features(self.backbone, mosaic)
        return self.neck((cells, ))[0]


@MODELS.register_module()
class MosRep(MosaicSelfSupervisor):
    """MosRep on MoCo v2, as released by its authors.

    Per image: a query view, a key view and ``K = 4`` local crops
    (``MultiView(num_views=[2, 4])``). The crops of the batch form one
    2x2 mosaic per image (:func:`~ediy_mm.models.utils.mosaic.
    assemble_mosaic`), jittered; the online backbone encodes the query
    view and the mosaics, RoIAlign (7x7, 1/32, aligned) pools each cell,
    and :class:`~ediy_mm.models.necks.MosRepNeck` embeds both. The
    momentum encoder (batch-shuffle BN) embeds the key views; the keys are
    gathered from all processes. Losses
    (:func:`~ediy_mm.models.losses.mosrep_contrastive_loss`):

    - ``loss_plain``: the query against the gathered keys (its own image's
      key positive) and the queue;
    - ``loss_mosaic``: each cell against the same keys, its source image's
      key positive, weighted by ``sqrt(visible fraction)``.

    The total is their sum. The queue (``[feat_dim, queue_len]``, unit
    columns) then receives the gathered keys; it and its pointer are
    buffers, so checkpoints hold them and ``--resume`` continues exactly.
    Under DDP, cell ``k`` of image ``b`` of process ``r`` points at key
    ``r*B + (b - k) mod B`` of the gathered keys.

    Args:
        backbone (dict): Online backbone (ResNet-50, ``zero_init_residual
            =True`` as released).
        neck (dict): :class:`MosRepNeck` config.
        head (None): Must be None: the loss is computed here
            (``temperature``). Present so that configs inheriting
            mmpretrain's MoCo v2 can clear its ``ContrastiveHead``.
        queue_len (int): Queue length (65536 in ``pretrain_mosrep.sh``).
        feat_dim (int): Embedding width. Defaults to 128.
        momentum (float): ``1 - m`` of the key encoder, constant (MoCo's
            ``m = 0.999`` is 0.001, mmpretrain's MoCo v2 convention).
        temperature (float): τ. Defaults to 0.2.
        mosaic (dict, optional): :class:`MosaicSampler` arguments (jitter
            probability, pixels and β; RoIAlign size and scale). Defaults
            to the released values for 112 px crops.
        pretrained (str, optional): Checkpoint for the whole model.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: None = None,
                 queue_len: int = 65536,
                 feat_dim: int = 128,
                 momentum: float = 0.001,
                 temperature: float = 0.2,
                 mosaic: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        if head is not None:
            raise ValueError(
                'MosRep computes its loss itself (model.temperature): set '
                'model.head=None (a config inheriting mmpretrain MoCo v2 '
                'carries its ContrastiveHead)')
        if queue_len < 1 or feat_dim < 1:
            raise ValueError('queue_len and feat_dim must be >= 1, got '
                             f'{queue_len} and {feat_dim}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        super().__init__(
            backbone=backbone,
            neck=neck,
            momentum=momentum,
            end_momentum=momentum,
            mosaic=mosaic,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        out_channels = getattr(self.neck, 'out_channels', feat_dim)
        if out_channels != feat_dim:
            raise ValueError(f'model.feat_dim={feat_dim} but the neck embeds '
                             f'in {out_channels} channels: make them equal')
        self.queue_len = queue_len
        self.temperature = temperature
        self.register_buffer(
            'queue', F.normalize(torch.randn(feat_dim, queue_len), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def embed_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """Momentum-encoder embeddings of this process's key views, with
        batch-shuffle BN (mmpretrain's ``batch_shuffle_ddp``, gloo or
        NCCL), unit norm.

        Args:
            keys (Tensor): Key views ``[B, 3, H, W]``.

        Returns:
            Tensor: ``[B, D]`` in this process's order.
        """
        shuffled, restore = batch_shuffle_ddp(keys)
        embedded = F.normalize(self.target_net(shuffled)[0], dim=1)
        return batch_unshuffle_ddp(embedded, restore)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        """Write the gathered keys ``[N, D]`` at the queue pointer (a ring:
        any ``N <= queue_len``; the released code asserts that ``N``
        divides ``queue_len``, where both agree)."""
        index = (self.queue_ptr + torch.arange(
            keys.size(0), device=keys.device)) % self.queue_len
        self.queue[:, index] = keys.t().to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.size(0)) % self.queue_len)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Compute ``loss_plain`` and ``loss_mosaic``; update the queue.

        Args:
            inputs (list[Tensor]): Query view, key view ``[B, 3, H, W]``,
                then the local crops ``[B, 3, h, w]``.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: The two loss terms.
        """
        (query, key), crops = split_views(inputs)
        batch_size = query.size(0)
        offset = rank_offset(batch_size)
        gathered = batch_size * get_dist_info()[1]
        if gathered > self.queue_len:
            raise ValueError(f'{gathered} keys per step do not fit a queue '
                             f'of {self.queue_len}: raise model.queue_len')
        mosaic = self.mosaic(crops, offset)
        plain = self.embed(query)
        cells = self.embed_cells(mosaic)
        keys = torch.cat(all_gather(self.embed_keys(key)))
        queue = self.queue.clone()
        own = torch.arange(batch_size, device=keys.device) + offset
        losses = dict(
            loss_plain=mosrep_contrastive_loss(plain, keys, queue, own,
                                               self.temperature),
            loss_mosaic=mosrep_contrastive_loss(cells, keys, queue,
                                                mosaic.sources.flatten(),
                                                self.temperature,
                                                mosaic.weights.flatten()))
        self._enqueue(keys)
        return losses


@MODELS.register_module()
class MosRepBYOL(MosaicSelfSupervisor):
    """MosRep's mosaic on BYOL (ours; in neither paper).

    BYOL (eq. 2, :func:`~ediy_mm.models.losses.byol_loss`) on the two
    global views, plus the mosaic cells as extra views: each cell's online
    prediction regresses the target projections of both global views of
    its source image, weighted by ``sqrt(visible fraction)``
    (:func:`~ediy_mm.models.losses.mosaic_byol_loss`). Nothing is gathered
    across processes (each cell's source image is in the same batch); the
    target follows BYOL's cosine schedule, once per optimizer step.

    Args:
        backbone (dict): Online backbone config.
        neck (dict): BYOL's projector (``NonLinearNeck`` with
            ``with_avg_pool=True``).
        predictor (dict): BYOL's predictor (``NonLinearNeck`` without
            pooling).
        head (None): Must be None (the losses are computed here; clears
            the ``LatentPredictHead`` of configs inheriting mmpretrain's
            BYOL).
        base_momentum (float): ``1 - τ_base``, cosine-annealed to 0.
            Defaults to 0.01 (τ_base 0.99, mmpretrain's BYOL).
        lambda_mosaic (float): Weight of ``loss_mosaic`` (> 0). Defaults
            to 1.
        mosaic (dict, optional): :class:`MosaicSampler` arguments.
        pretrained (str, optional): Checkpoint for the whole model.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 predictor: dict,
                 head: None = None,
                 base_momentum: float = 0.01,
                 lambda_mosaic: float = 1.,
                 mosaic: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        if head is not None:
            raise ValueError(
                'MosRepBYOL computes its losses itself: set model.head=None '
                'and give BYOL\'s predictor as model.predictor')
        if lambda_mosaic <= 0:
            raise ValueError(
                f'lambda_mosaic must be > 0, got {lambda_mosaic} (without '
                "the mosaic this is BYOL: use type='BYOL')")
        super().__init__(
            backbone=backbone,
            neck=neck,
            momentum=base_momentum,
            end_momentum=0.,
            mosaic=mosaic,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.predictor = MODELS.build(predictor)
        self.lambda_mosaic = lambda_mosaic

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Compute ``loss_byol`` and ``loss_mosaic``.

        Args:
            inputs (list[Tensor]): Two global views ``[B, 3, H, W]``, then
                the local crops ``[B, 3, h, w]``.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: The two loss terms (``loss_mosaic`` already
            multiplied by ``lambda_mosaic``).
        """
        views, crops = split_views(inputs)
        mosaic = self.mosaic(crops)
        pred_1, pred_2 = (self.predictor((self.embed(v), ))[0] for v in views)
        cells = self.predictor((self.embed_cells(mosaic), ))[0]
        with torch.no_grad():
            target_1, target_2 = (self.target_net(v)[0] for v in views)
        return dict(
            loss_byol=byol_loss(pred_1, pred_2, target_1, target_2),
            loss_mosaic=self.lambda_mosaic * mosaic_byol_loss(
                cells, target_1, target_2, mosaic.sources.flatten(),
                mosaic.weights.flatten()))
