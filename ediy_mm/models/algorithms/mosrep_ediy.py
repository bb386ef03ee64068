"""E-DIY + mosaic (ours; in neither the E-DIY nor the MosRep paper)."""
from typing import Dict, List, Optional

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..losses.mosrep_losses import mosaic_byol_loss
from ..utils.mosaic import Mosaic, MosaicSampler, split_views
from .ediy import EDIY, check_two_views

__all__ = ['EDIYMosaic']


@MODELS.register_module()
class EDIYMosaic(EDIY):
    """E-DIY with MosRep's mosaic cells as extra views of BYOL's loss.

    Ours, not from either paper. The two global views train E-DIY exactly
    as :class:`EDIY` does (eq. 3: R-DEM, R-IEM and BYOL, regions chosen by
    ``region_source``). In addition, each image's four local crops go into
    the batch's 2x2 mosaics (MosRep's view:
    :class:`~ediy_mm.models.utils.mosaic.MosaicSampler`, jitter included);
    the online backbone encodes the mosaics, RoIAlign pools each cell, and
    the online *global* projector and BYOL's predictor embed it. Each
    cell's prediction regresses the momentum target's global projections of
    both global views of its source image, weighted by ``sqrt(visible
    fraction)``:

    ``L = λ1·L_R-DEM + λ2·L_R-IEM + λ3·L_BYOL + λ_mosaic·L_mosaic``, with
    ``L_mosaic`` :func:`~ediy_mm.models.losses.mosaic_byol_loss`. The cells
    take no part in the region losses. The target projections are the ones
    E-DIY computes anyway (no extra target pass).

    Args:
        lambda_mosaic (float): ``λ_mosaic`` (> 0). Defaults to 1.
        mosaic (dict, optional): :class:`MosaicSampler` arguments.
        **kwargs: :class:`EDIY` arguments; the head must train BYOL
            (``lambda_byol > 0``), whose projector and predictor embed the
            cells.
    """

    def __init__(self,
                 lambda_mosaic: float = 1.,
                 mosaic: Optional[dict] = None,
                 **kwargs) -> None:
        if lambda_mosaic <= 0:
            raise ValueError(f'lambda_mosaic must be > 0, got {lambda_mosaic}'
                             " (without the mosaic this is type='EDIY')")
        super().__init__(**kwargs)
        if not self.head.uses_online_global:
            raise ValueError(
                "E-DIY + mosaic adds the cells to BYOL's loss: it needs "
                'model.head.lambda_byol > 0')
        self.lambda_mosaic = lambda_mosaic
        self.mosaic = MosaicSampler(**(mosaic or {}))

    def check_views(self, inputs: List[torch.Tensor]) -> None:
        """Raise a clear error unless ``inputs`` are two global views then
        the local crops."""
        check_two_views(split_views(inputs)[0])

    def embed_cells(self, mosaic: Mosaic) -> torch.Tensor:
        """BYOL predictions of every mosaic cell: online backbone on the
        mosaics, RoIAlign, global projector, predictor.

        Args:
            mosaic (Mosaic): The batch's mosaics.

        Returns:
            Tensor: ``[B*K, D]``, ordered as ``mosaic.sources.flatten()``.
        """
        rois = self.mosaic.cell_features(self.backbone, mosaic)
        projected = self.neck((rois, ), with_local=False)[0]
        return self.head.predictor((projected, ))[0]

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """E-DIY's loss terms on the two global views, plus
        ``loss_mosaic``.

        Args:
            inputs (list[Tensor]): Two global views ``[B, 3, H, W]``, then
                the local crops ``[B, 3, h, w]``.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: E-DIY's weighted terms and ``loss_mosaic``
            (multiplied by ``lambda_mosaic``).
        """
        self.check_views(inputs)
        views, crops = split_views(inputs)
        mosaic = self.mosaic(crops)
        feats = self.features(views)
        losses = self.head.loss(feats)
        losses['loss_mosaic'] = self.lambda_mosaic * mosaic_byol_loss(
            self.embed_cells(mosaic), *feats.target_global,
            mosaic.sources.flatten(), mosaic.weights.flatten())
        return losses
