"""mmpretrain's photometric view augmentations, batched on the training
device with a random draw per sample.

mmpretrain's view pipelines (BYOL's, MoCo v2's) augment each view's uint8
BGR image on the CPU with ``RandomApply([ColorJitter], p)`` (brightness,
contrast, saturation and hue in a random order per image, through PIL's
``ImageEnhance`` and HSV: mmcv's pillow backend), ``RandomGrayscale``
(mmcv), ``GaussianBlur`` (PIL's) and ``Solarize`` (mmcv). Here each is one
function of a batch ``[N, 3, H, W]`` of float32 **RGB** images holding
whole numbers in [0, 255], with per-sample parameters, and each rounds as
PIL or mmcv does (every step returns whole numbers in [0, 255], as every
CPU step returns uint8). Each op class reads its parameters from the
mmpretrain transform itself (same config dict, same checks) and draws them
for a whole batch from a ``torch.Generator`` with mmpretrain's
distributions; ``tests/test_batch_photometric.py`` compares both, pixel by
pixel on fixed parameters and in distribution over many draws.

Where the two cannot be equal (docs/data_loading.md):

- hue: PIL rotates a uint8 hue (truncated from RGB, then converted back
  with rounding); here the hue is continuous (torchvision's HSV
  conversion), rotated by the same whole number of 1/255 turns (mmcv's
  ``int(255 * factor)``);
- Gaussian blur: PIL's own algorithm (three extended box blurs per axis,
  rounded after each), in float32 instead of PIL's integers: a level
  apart where a sum falls within float rounding of a half. Like PIL's,
  it has no kernel size: the standard deviation is in pixels whatever the
  view size, not BYOL's kernel of 10 % of the image side.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmcv.transforms import RandomGrayscale
from mmpretrain.datasets.transforms import ColorJitter, GaussianBlur, Solarize
from torch import Tensor
from torch.nn import functional as F
from torchvision.transforms.v2.functional._color import (_hsv_to_rgb,
                                                         _rgb_to_hsv)

__all__ = [
    'PhotometricOp', 'BatchColorJitter', 'BatchGrayscale', 'BatchGaussianBlur',
    'BatchSolarize', 'ViewPhotometric', 'luma', 'enhance', 'adjust_brightness',
    'adjust_contrast', 'adjust_saturation', 'adjust_hue', 'grayscale',
    'box_blur_radius', 'gaussian_blur', 'solarize', 'build_photometric_op'
]

Params = Dict[str, Tensor]


def _per_sample(value: Tensor, images: Tensor) -> Tensor:
    """``[N]`` -> ``[N, 1, 1, 1]`` on the device of ``images`` (a copy from
    the CPU that does not wait for the device)."""
    return value.to(
        images.device, images.dtype, non_blocking=True).view(-1, 1, 1, 1)


# ------------------------------------------------------------- the functions
def luma(images: Tensor) -> Tensor:
    """PIL's ``convert('L')`` of RGB images: ITU-R 601-2 luma rounded to
    a whole number, ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``.

    Args:
        images (Tensor): ``[N, 3, H, W]`` whole numbers in [0, 255].

    Returns:
        Tensor: ``[N, 1, H, W]`` (exact in float32: the sum stays below
        ``2**24``).
    """
    r, g, b = images.unbind(1)
    total = r * 19595 + g * 38470 + b * 7471 + 32768
    return torch.floor(total / 65536).unsqueeze(1)


def enhance(images: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """PIL's ``ImageEnhance``: ``Image.blend(degenerate, image, factor)``,
    ``floor(d + f (x - d))`` clipped to [0, 255] (PIL truncates).

    Args:
        images (Tensor): ``[N, 3, H, W]``.
        degenerate (Tensor): Broadcastable to ``images``.
        factor (Tensor): ``[N]`` per-sample enhancement factors (any
            device).

    Returns:
        Tensor: ``[N, 3, H, W]``.
    """
    blended = degenerate + _per_sample(factor, images) * (images - degenerate)
    return blended.floor_().clamp_(0, 255)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """``mmcv.adjust_brightness(backend='pillow')``: blend with black."""
    return enhance(images, torch.zeros_like(images[:, :1]), factor)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """``mmcv.adjust_contrast(backend='pillow')``: blend with the image's
    mean luma, rounded to a whole number as PIL does."""
    mean = luma(images).mean(dim=(1, 2, 3), keepdim=True)
    return enhance(images, torch.floor(mean + 0.5), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """``mmcv.adjust_color(backend='pillow')`` (PIL's ``ImageEnhance.
    Color``): blend with the image's luma."""
    return enhance(images, luma(images), factor)


def adjust_hue(images: Tensor, turns: Tensor) -> Tensor:
    """Rotate the hue by ``turns`` of a full turn, rounded to whole numbers
    (torchvision's RGB <-> HSV conversion).

    Args:
        images (Tensor): ``[N, 3, H, W]``.
        turns (Tensor): ``[N]`` hue shifts (any device).

    Returns:
        Tensor: ``[N, 3, H, W]``.
    """
    hsv = _rgb_to_hsv(images / 255)
    hue = (hsv[:, 0] + _per_sample(turns, images)[:, 0]).remainder_(1)
    rgb = _hsv_to_rgb(torch.stack((hue, hsv[:, 1], hsv[:, 2]), 1))
    return rgb.mul_(255).round_()


def grayscale(images: Tensor, weights: Sequence[float]) -> Tensor:
    """mmcv's ``RandomGrayscale(keep_channels=True)``: the weighted sum of
    the channels (weights normalised to sum 1), truncated, in every
    channel.

    Args:
        images (Tensor): ``[N, 3, H, W]``.
        weights (Sequence[float]): One weight per channel of ``images``.

    Returns:
        Tensor: ``[N, 3, H, W]``.
    """
    gray = sum(w / sum(weights) * images[:, c:c + 1]
               for c, w in enumerate(weights)).floor_()
    return gray.expand_as(images).contiguous()


def box_blur_radius(sigma: Tensor, passes: int = 3) -> Tensor:
    """PIL's box radius for a Gaussian blur of standard deviation
    ``sigma`` made of ``passes`` box blurs (Gwosdek et al., "Theoretical
    foundations of Gaussian convolution by extended box filtering", SSVM
    2011, eqs. 7, 11, 14; PIL's ``_gaussian_blur_radius``).

    Args:
        sigma (Tensor): ``[N]`` standard deviations, pixels.
        passes (int): Box blurs per axis. Defaults to 3 (PIL's).

    Returns:
        Tensor: ``[N]`` radii ``l + a`` (whole part ``l``, the weight ``a``
        of the two pixels just outside it), float32 as PIL computes them.
    """
    sigma2 = sigma.float()**2 / passes
    length = torch.sqrt(12 * sigma2 + 1)
    whole = torch.floor((length - 1) / 2)
    part = (2 * whole + 1) * (whole * (whole + 1) - 3 * sigma2)
    return whole + part / (6 * (sigma2 - (whole + 1)**2))


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """PIL's ``GaussianBlur(radius=sigma)`` of each image with its own
    ``sigma``: three extended box blurs along the width, then three along
    the height (:func:`box_blur_radius`), each with PIL's 24-bit weights,
    edge pixels repeated, rounded to whole numbers.

    Every pass is a few shifted multiply-adds over the whole batch, each
    image with its own weights (element-wise float32: no reduced-precision
    convolution under autocast or TF32).

    Args:
        images (Tensor): ``[N, C, H, W]``.
        sigma (Tensor): ``[N]`` standard deviations, pixels, on the CPU.

    Returns:
        Tensor: ``[N, C, H, W]``.
    """
    radius = box_blur_radius(sigma.cpu())
    whole = radius.int()
    # PIL: ww = 2**24 / (2 r + 1) and fw for the two outer pixels, UINT32
    inner = torch.floor(2.**24 / (radius * 2 + 1))
    outer = torch.floor((2.**24 - (whole * 2 + 1) * inner) / 2)
    half = int(whole.max()) + 1
    taps = torch.arange(-half, half + 1).abs().view(1, -1)
    weights = torch.where(
        taps <= whole.view(-1, 1), inner.view(-1, 1),
        torch.where(taps == whole.view(-1, 1) + 1, outer.view(-1, 1),
                    0.)) / 2.**24
    weights = weights.to(images.device,
                         images.dtype).T.reshape(-1, len(images), 1, 1, 1)
    x = images
    for dim, pad in ((3, (half, half, 0, 0)), (2, (0, 0, half, half))):
        for _ in range(3):
            padded = F.pad(x, pad, mode='replicate')
            x = weights[0] * padded.narrow(dim, 0, x.shape[dim])
            for tap in range(1, 2 * half + 1):
                x.addcmul_(weights[tap], padded.narrow(dim, tap, x.shape[dim]))
            x.add_(0.5).floor_()
    return x


def solarize(images: Tensor, thr: Tensor) -> Tensor:
    """``mmcv.solarize``: ``x if x < thr else 255 - x``.

    Args:
        images (Tensor): ``[N, C, H, W]``.
        thr (Tensor): ``[N]`` thresholds (any device).

    Returns:
        Tensor: ``[N, C, H, W]``.
    """
    return torch.where(images < _per_sample(thr, images), images, 255 - images)


# ------------------------------------------------------------------- the ops
class PhotometricOp:
    """One augmentation of a view pipeline, for a batch.

    :meth:`draw` makes every random draw of a batch at once, on the CPU;
    :meth:`__call__` applies them to the images, on their device, only to
    the samples whose ``'applied'`` is true. The parameters stay on the
    CPU, and whatever selects samples is computed there: nothing waits for
    the device.

    Args:
        prob (float): Probability that a sample is augmented.
    """

    def __init__(self, prob: float) -> None:
        self.prob = float(prob)

    def _applied(self, num: int, generator: torch.Generator) -> Tensor:
        # mmpretrain's random_disable: skipped when rand() > prob
        return ~(
            torch.rand(num, generator=generator, dtype=torch.float64)
            > self.prob)

    def draw(self, num: int, generator: torch.Generator) -> Params:
        """The parameters of ``num`` samples.

        Args:
            num (int): Batch size.
            generator (torch.Generator): A CPU generator.

        Returns:
            dict[str, Tensor]: ``'applied'`` (``[num]`` bool) and the op's
            parameters, ``[num, ...]`` each.
        """
        raise NotImplementedError

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Augment every image of ``images`` with its ``params`` (CPU
        tensors, one row per image)."""
        raise NotImplementedError

    def __call__(self, images: Tensor, params: Params) -> Tensor:
        """Augment the samples of ``images`` whose ``params['applied']``
        holds, in place.

        Args:
            images (Tensor): ``[N, 3, H, W]`` RGB, whole numbers in
                [0, 255].
            params (dict[str, Tensor]): From :meth:`draw` (on the CPU).

        Returns:
            Tensor: ``images``.
        """
        index = params['applied'].nonzero().flatten()
        if len(index) == len(images):
            return self.apply(images, params)
        if len(index):
            chosen = {k: v[index] for k, v in params.items()}
            index = index.to(images.device, non_blocking=True)
            images[index] = self.apply(images[index], chosen)
        return images

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'


class BatchColorJitter(PhotometricOp):
    """mmpretrain's ``ColorJitter`` (optionally inside ``RandomApply``):
    brightness, contrast, saturation and hue factors drawn uniformly from
    their ranges, applied in a random order drawn per sample (mmpretrain's
    ``np.random.permutation(4)``); a range of ``None`` skips its step.

    The hue factor ``h`` turns the hue by ``int(255 h) / 255`` (mmcv's
    uint8 hue shift, truncated towards zero).

    Args:
        prob (float): ``RandomApply``'s probability. Defaults to 1.
        **jitter: mmpretrain ``ColorJitter`` arguments (``brightness``,
            ``contrast``, ``saturation``, ``hue``).
    """

    STEPS = ('brightness', 'contrast', 'saturation', 'hue')
    FUNCTIONS = (adjust_brightness, adjust_contrast, adjust_saturation,
                 adjust_hue)

    def __init__(self, prob: float = 1., **jitter) -> None:
        super().__init__(prob)
        reference = ColorJitter(**jitter)
        self.ranges = [getattr(reference, name) for name in self.STEPS]

    def draw(self, num: int, generator: torch.Generator) -> Params:
        params = dict(
            applied=self._applied(num, generator),
            order=torch.rand(num, 4, generator=generator).argsort(1))
        for name, bounds in zip(self.STEPS, self.ranges):
            if bounds is not None:
                low, high = bounds
                params[name] = low + (high - low) * torch.rand(
                    num, generator=generator, dtype=torch.float64)
        if 'hue' in params:  # mmcv: np.uint8(int(hue * 255)) of 255 a turn
            params['hue'] = torch.trunc(params['hue'] * 255) / 255
        return {
            k: v.float() if v.is_floating_point() else v
            for k, v in params.items()
        }

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Run the four steps in each sample's order."""
        for position in range(4):
            for step, name in enumerate(self.STEPS):
                if name not in params:
                    continue
                index = (
                    params['order'][:, position] == step).nonzero().flatten()
                if len(index) == len(images):
                    images = self.FUNCTIONS[step](images, params[name])
                elif len(index):
                    index = index.to(images.device, non_blocking=True)
                    images[index] = self.FUNCTIONS[step](images[index],
                                                         params[name][index])
        return images

    def __repr__(self) -> str:
        ranges = ', '.join(f'{n}={r}' for n, r in zip(self.STEPS, self.ranges))
        return f'{type(self).__name__}(prob={self.prob}, {ranges})'


class BatchGrayscale(PhotometricOp):
    """mmcv's ``RandomGrayscale`` with ``keep_channels=True``.

    Args:
        channel_weights (Sequence[float]): In the order of the pipeline's
            images, BGR (mmcv's ``color_format='bgr'``); reversed here for
            the RGB batch.
        **kwargs: The other ``RandomGrayscale`` arguments (``prob``).
    """

    def __init__(self, **kwargs) -> None:
        reference = RandomGrayscale(**kwargs)
        if not reference.keep_channels:
            raise ValueError('RandomGrayscale on the training device needs '
                             'keep_channels=True (a batch keeps 3 channels)')
        if reference.color_format != 'bgr':
            raise ValueError("RandomGrayscale on the training device needs "
                             f"color_format='bgr', got "
                             f'{reference.color_format!r}')
        super().__init__(reference.prob)
        self.weights_rgb = tuple(reference.channel_weights[::-1])

    def draw(self, num: int, generator: torch.Generator) -> Params:
        # mmcv: applied when random.random() < prob
        return dict(
            applied=torch.rand(num, generator=generator, dtype=torch.float64) <
            self.prob)

    def apply(self, images: Tensor, params: Params) -> Tensor:
        return grayscale(images, self.weights_rgb)


class _Magnitude(PhotometricOp):
    """An mmpretrain ``BaseAugTransform`` whose magnitude is fixed
    (``value``) or drawn as its ``random_magnitude``."""

    def __init__(self, reference, value: Optional[float]) -> None:
        super().__init__(reference.prob)
        self.value = value
        self.level = reference.magnitude_level
        self.std = reference.magnitude_std
        self.total = reference.total_level
        self.bounds = reference.magnitude_range

    def _magnitude(self, num: int, generator: torch.Generator) -> Tensor:
        if self.value is not None:
            return torch.full((num, ), float(self.value), dtype=torch.float64)
        level = torch.full((num, ), float(self.level), dtype=torch.float64)
        if self.std == 'inf':
            level = level * torch.rand(
                num, generator=generator, dtype=torch.float64)
        elif self.std > 0:
            level = (level + self.std * torch.randn(
                num, generator=generator, dtype=torch.float64)).clamp(
                    0, self.total)
        low, high = self.bounds
        return level / self.total * (high - low) + low


class BatchGaussianBlur(_Magnitude):
    """mmpretrain's ``GaussianBlur``: a radius (standard deviation, pixels)
    fixed or drawn from ``magnitude_range`` (uniformly with
    ``magnitude_std='inf'``), applied with probability ``prob``.

    Args:
        **kwargs: mmpretrain ``GaussianBlur`` arguments.
    """

    def __init__(self, **kwargs) -> None:
        reference = GaussianBlur(**kwargs)
        super().__init__(reference, reference.radius)

    def draw(self, num: int, generator: torch.Generator) -> Params:
        applied = self._applied(num, generator)
        return dict(
            applied=applied, sigma=self._magnitude(num, generator).float())

    def apply(self, images: Tensor, params: Params) -> Tensor:
        return gaussian_blur(images, params['sigma'])


class BatchSolarize(_Magnitude):
    """mmpretrain's ``Solarize``: invert the pixels at or above ``thr``,
    with probability ``prob``.

    Args:
        **kwargs: mmpretrain ``Solarize`` arguments.
    """

    def __init__(self, **kwargs) -> None:
        reference = Solarize(**kwargs)
        super().__init__(reference, reference.thr)

    def draw(self, num: int, generator: torch.Generator) -> Params:
        applied = self._applied(num, generator)
        return dict(
            applied=applied, thr=self._magnitude(num, generator).float())

    def apply(self, images: Tensor, params: Params) -> Tensor:
        return solarize(images, params['thr'])


_OPS = dict(
    ColorJitter=BatchColorJitter,
    RandomGrayscale=BatchGrayscale,
    GaussianBlur=BatchGaussianBlur,
    Solarize=BatchSolarize)


def build_photometric_op(cfg: dict) -> PhotometricOp:
    """The batched op of one mmpretrain transform config.

    ``RandomApply(transforms=[one transform], prob=p)`` multiplies the
    transform's own probability by ``p``.

    Args:
        cfg (dict): ``ColorJitter``, ``RandomGrayscale``, ``GaussianBlur``,
            ``Solarize``, or ``RandomApply`` of one of them.

    Returns:
        PhotometricOp: The op.
    """
    cfg = dict(cfg)
    cfg.pop('_scope_', None)  # set on dicts inherited through mmpretrain::
    name = cfg.pop('type')
    if name == 'RandomApply':
        inner = cfg.pop('transforms')
        inner = inner if isinstance(inner, (list, tuple)) else [inner]
        if len(inner) != 1:
            raise ValueError('RandomApply on the training device takes one '
                             f'transform, got {len(inner)}')
        op = build_photometric_op(inner[0])
        op.prob *= float(cfg.pop('prob', 0.5))
        return op
    if name not in _OPS:
        raise ValueError(f'{name} cannot run on the training device: the '
                         f'batched transforms are {", ".join(_OPS)} (and '
                         'RandomApply of one of them)')
    return _OPS[name](**cfg)


class ViewPhotometric:
    """The photometric steps of one view pipeline, for a batch of views.

    Args:
        transforms (Sequence[dict]): mmpretrain transform configs, in the
            pipeline's order (see :func:`build_photometric_op`).
    """

    def __init__(self, transforms: Sequence[dict]) -> None:
        self.ops: List[PhotometricOp] = [
            build_photometric_op(cfg) for cfg in transforms
        ]

    def draw(self, num: int, generator: torch.Generator) -> List[Params]:
        """Every op's parameters for ``num`` samples, op after op."""
        return [op.draw(num, generator) for op in self.ops]

    def __call__(self, images: Tensor, params: List[Params]) -> Tensor:
        """Apply the ops with their drawn ``params``, in place.

        Args:
            images (Tensor): ``[N, 3, H, W]`` float RGB, whole numbers in
                [0, 255].
            params (list[dict]): From :meth:`draw`.

        Returns:
            Tensor: ``images``.
        """
        for op, op_params in zip(self.ops, params):
            images = op(images, op_params)
        return images

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.ops})'
