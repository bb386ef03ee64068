"""The views' photometric augmentations on the training device."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmpretrain.models import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS
from torch import Tensor

from ...datasets.decode_views import (PHOTOMETRIC_KEY, expand_views,
                                      photometric_fingerprint,
                                      split_view_pipeline)
from .batch_photometric import ViewPhotometric
from .process_random import draw_for_this_process

__all__ = ['PhotometricDataPreprocessor']

#: Mixed with torch's initial seed (the run's seed) into the generator's.
_STREAM = 0x70686f74


def _save_generator_state(module: 'PhotometricDataPreprocessor',
                          state_dict: dict, prefix: str,
                          local_metadata: dict) -> None:
    """State-dict hook: the generator's current state (torch's and
    mmengine's ``state_dict`` both run it)."""
    state_dict[prefix + 'generator_state'] = module.generator.get_state()


@MODELS.register_module()
class PhotometricDataPreprocessor(SelfSupDataPreprocessor):
    """mmpretrain's ``SelfSupDataPreprocessor`` that also runs the views'
    photometric augmentations (colour jitter, grayscale, Gaussian blur,
    solarisation), batched, on the model's device.

    The data workers decode, crop and flip (:class:`~ediy_mm.datasets.
    DecodeMultiView`, :class:`~ediy_mm.datasets.UniVIPViews` with
    ``photometric='device'``) and hand over uint8 BGR views; here each view
    of the batch is augmented with the photometric steps of its pipeline
    (:mod:`~ediy_mm.models.utils.batch_photometric`, mmpretrain's
    transforms with the same distributions), each sample with its own
    random draw, then converted and normalised as the parent does.
    ``num_views`` and ``transforms`` are those of mmpretrain's
    ``MultiView`` (the whole view pipelines: the geometric steps,
    ``RandomResizedCrop`` and ``RandomFlip``, are the workers' and skipped
    here).

    The data side marks its samples (``data_samples[i].photometric``,
    packed by ``PackInputs(meta_keys=['photometric'])``): views left to
    the device carry the fingerprint of the photometric steps the data
    side skipped (:func:`~ediy_mm.datasets.decode_views.
    photometric_fingerprint`), and are augmented here, once this
    preprocessor's own steps are checked to be those (a config that
    changes one side only fails with a clear error instead of training
    with other augmentations); ``'cpu'`` views (augmented by the workers:
    the stock pipeline) are only converted and normalised, as by the
    parent. Unmarked views in training (a ``PackInputs`` without
    ``meta_keys=['photometric']``, or mmpretrain's own pipelines) fail
    with an error that says so: they would otherwise train without colour
    augmentation. Outside training (``training=False``) nothing is
    augmented or checked.

    **Random draws.** From this preprocessor's own ``torch.Generator``
    (CPU), seeded from the run's seed, so the model's other draws do not
    move. Its state is in the model's state dict (``generator_state``), so
    checkpoints save it and ``--resume`` continues it exactly. All
    processes advance it alike, and each batch every process takes its own
    seed from it (:func:`~ediy_mm.models.utils.draw_for_this_process`):
    the processes augment differently.

    Args:
        num_views (int | Sequence[int]): Views made by each pipeline, as
            mmpretrain's ``MultiView``.
        transforms (Sequence[Sequence[dict]]): The view pipelines.
        seed (int, optional): The generator's seed. Defaults to one
            derived from ``torch.initial_seed()`` (the run's
            ``randomness.seed``, set before the model is built).
        **kwargs: ``SelfSupDataPreprocessor`` arguments (``mean``,
            ``std``, ``to_rgb``, ...).
    """

    def __init__(self,
                 num_views: Union[int, Sequence[int]],
                 transforms: Sequence[Sequence[dict]],
                 seed: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        pipelines = [
            ViewPhotometric(split_view_pipeline(pipeline)[1])
            for pipeline in transforms
        ]
        self.groups = expand_views(num_views, pipelines)
        self.mark = photometric_fingerprint(num_views, transforms)
        if seed is None:
            seed = int(
                np.random.SeedSequence([torch.initial_seed(), _STREAM
                                        ]).generate_state(1, np.uint64)[0] %
                2**63)
        self.generator = torch.Generator().manual_seed(seed)
        # saved by _save_generator_state, read back by _load_from_state_dict
        self.register_buffer('generator_state', self.generator.get_state())
        self.register_state_dict_post_hook(_save_generator_state)

    @property
    def num_views(self) -> int:
        """Views per sample."""
        return sum(count for _, count in self.groups)

    def _load_from_state_dict(self, state_dict, prefix, *args,
                              **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + 'generator_state' in state_dict:
            self.generator.set_state(self.generator_state.cpu())

    def batch_generator(self) -> torch.Generator:
        """This process's generator for one batch (advances the shared
        one by one draw per process)."""
        seed = draw_for_this_process(
            lambda: int(torch.randint(2**62, (1, ), generator=self.generator)))
        return torch.Generator().manual_seed(seed)

    def augment(self, inputs: List[Tensor],
                generator: torch.Generator) -> List[Tensor]:
        """Augment the views.

        Args:
            inputs (list[Tensor]): ``num_views`` batches ``[B, 3, H, W]``
                of uint8 BGR views, on the device.
            generator (torch.Generator): Draws every parameter.

        Returns:
            list[Tensor]: The views, float32 RGB, whole numbers in
            [0, 255].
        """
        if len(inputs) != self.num_views:
            raise ValueError(
                f'PhotometricDataPreprocessor has pipelines for '
                f'{self.num_views} views per sample, the batch holds '
                f'{len(inputs)}: num_views must be the data pipeline\'s')
        out, start = [], 0
        for pipeline, count in self.groups:
            views = inputs[start:start + count]
            start += count
            same = len({tuple(v.shape) for v in views}) == 1
            chunks = [torch.cat(views)] if same else views
            for chunk in chunks:
                images = chunk[:, [2, 1, 0]].float()
                images = pipeline(images,
                                  pipeline.draw(len(images), generator))
                out.extend(images.split(len(views[0])) if same else [images])
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        """Augment (in training, views marked ``'device'``), convert and
        normalise.

        Args:
            data (dict): ``inputs`` (a list of ``[B, 3, H, W]`` uint8 BGR
                view batches) and ``data_samples``, from
                ``default_collate``.
            training (bool): Augment only when true.

        Returns:
            dict: ``inputs`` (list of float32 ``[B, 3, H, W]``) and
            ``data_samples``.
        """
        if not training or self._mark(data) == 'cpu':
            return super().forward(data, training)
        data = self.cast_data(data)
        inputs = self.augment(list(data['inputs']), self.batch_generator())
        if not self._channel_conversion:  # back to the pipeline's order
            inputs = [x[:, [2, 1, 0]] for x in inputs]
        if self._enable_normalize:
            inputs = [(x - self.mean) / self.std for x in inputs]
        return dict(inputs=inputs, data_samples=data['data_samples'])

    def _mark(self, data: dict) -> str:
        """The samples' common ``photometric`` mark, checked against this
        preprocessor's steps."""
        samples = data.get('data_samples') or []
        marks = {sample.get(PHOTOMETRIC_KEY) for sample in samples}
        if None in marks:
            raise ValueError(
                f"PhotometricDataPreprocessor got views without the "
                f"'{PHOTOMETRIC_KEY}' mark of DecodeMultiView / UniVIPViews: "
                f"pack it with PackInputs(meta_keys=[..., "
                f"'{PHOTOMETRIC_KEY}']) (without it the views would train "
                'with no colour augmentation at all); with a pipeline that '
                "augments in the workers (mmpretrain's MultiView), use "
                "mmpretrain's SelfSupDataPreprocessor")
        if len(marks) > 1:
            raise ValueError('PhotometricDataPreprocessor got a batch mixing '
                             f"'{PHOTOMETRIC_KEY}' marks {sorted(marks)}")
        mark = marks.pop() if marks else 'cpu'
        if mark not in ('cpu', self.mark):
            raise ValueError(
                f'The data pipeline left photometric steps {mark} to the '
                f'training device, but PhotometricDataPreprocessor has steps '
                f'{self.mark}: give data_preprocessor the num_views and '
                'transforms of the data pipeline (DecodeMultiView, '
                'UniVIPViews)')
        return mark
