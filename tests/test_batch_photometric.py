"""The photometric augmentations on the training device against mmpretrain's
and mmcv's on the CPU: pixel by pixel on fixed parameters, and in
distribution over many draws of the view pipelines of BYOL (both views) and
MoCo v2 (MosRep)."""
import random
from collections import defaultdict

import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.hub import get_config
from mmpretrain.datasets.transforms import auto_augment
from mmpretrain.registry import TRANSFORMS
from PIL import ImageFilter
from scipy import stats
from skimage import data
from torchvision.transforms.v2.functional._color import _rgb_to_hsv

import ediy_mm  # noqa: F401
from ediy_mm.datasets import split_view_pipeline
from ediy_mm.models.utils import batch_photometric as bp

BYOL = get_config('mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py')
MOCOV2 = get_config(
    'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py')
#: mmpretrain's view pipelines whose photometric steps run on the device.
PIPELINES = dict(
    byol_view1=BYOL.view_pipeline1,
    byol_view2=BYOL.view_pipeline2,
    mocov2=MOCOV2.view_pipeline)
#: One letter per jitter step, for the orders.
LETTERS = dict(brightness='b', contrast='c', color='s', hue='h')
#: A two-sample test fails below this p-value (fixed seeds: the tests are
#: deterministic; with equal distributions a failure has odds 1e-3).
P_MIN = 1e-3


@pytest.fixture(scope='module')
def photo() -> np.ndarray:
    """A real photo, BGR uint8 (mmcv's order), 128 x 128."""
    return np.ascontiguousarray(data.astronaut()[::4, ::4, ::-1])


def batch(bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 ``[H, W, 3]`` -> RGB float ``[1, 3, H, W]``."""
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float()


def bgr(images: torch.Tensor) -> np.ndarray:
    """RGB float ``[1, 3, H, W]`` -> BGR uint8 ``[H, W, 3]``."""
    assert torch.equal(images, images.round()) and images.min() >= 0
    return images[0].permute(1, 2, 0).numpy()[..., ::-1].astype(np.uint8)


def error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


@pytest.mark.parametrize('factor', [0.6, 0.83, 1.0, 1.21, 1.4])
@pytest.mark.parametrize('name', ['brightness', 'contrast', 'color'])
def test_enhance_ops_match_pillow(photo, name, factor):
    """Brightness, contrast and saturation: PIL's ImageEnhance to within
    one level (float rounding of the blend), almost everywhere equal."""
    ours = dict(
        brightness=bp.adjust_brightness,
        contrast=bp.adjust_contrast,
        color=bp.adjust_saturation)[name]
    stock = getattr(mmcv, f'adjust_{name}')(photo, factor, backend='pillow')
    got = bgr(ours(batch(photo), torch.tensor([factor])))
    assert error(got, stock).max() <= 1
    assert (got != stock).mean() < 1e-3


@pytest.mark.parametrize('factor', [-0.1, -0.043, 0.0, 0.02, 0.1, 0.5])
def test_hue_matches_pillow_within_two_levels(photo, factor):
    """Hue: mmcv's pillow hue shift (uint8 hue turned by int(255 h)):
    99 % of the pixels whose hue is defined within 2.5 of 255 levels of
    hue (PIL truncates H to 8 bits), 0.5-0.7 levels on average."""
    stock = mmcv.adjust_hue(photo, factor, backend='pillow')
    turns = torch.tensor([int(factor * 255) / 255])
    got = bgr(bp.adjust_hue(batch(photo), turns))
    hsv_stock = _rgb_to_hsv(batch(stock) / 255)[0]
    hsv_ours = _rgb_to_hsv(batch(got) / 255)[0]
    defined = (hsv_stock[1] > 0.25) & (hsv_stock[2] > 0.25)
    assert defined.float().mean() > 0.2
    turn = (hsv_ours[0] - hsv_stock[0]).abs()[defined]
    levels = torch.minimum(turn, 1 - turn) * 255
    assert levels.quantile(0.99) < 2.5 and levels.mean() < 1
    assert error(got, stock).mean() < 1.5


def test_grayscale_matches_mmcv(photo):
    stock = TRANSFORMS.build(BYOL.view_pipeline1[3])
    stock.prob = 1.
    expected = stock(dict(img=photo.copy()))['img']
    got = bgr(bp.grayscale(batch(photo), (0.2989, 0.587, 0.114)))
    assert error(got, expected).max() <= 1
    assert (got != expected).mean() < 1e-2


@pytest.mark.parametrize('sigma', [0.1, 0.4, 1.0, 1.55, 2.0])
def test_blur_is_pillows(photo, sigma):
    """PIL's three box blurs per axis: bit-exact in float64, and in
    float32 (what the preprocessor runs) a level apart now and then."""
    stock = TRANSFORMS.build(dict(type='GaussianBlur', radius=sigma,
                                  prob=1.))(dict(img=photo.copy()))['img']
    exact = bp.gaussian_blur(batch(photo).double(), torch.tensor([sigma]))
    assert np.array_equal(bgr(exact.float()), stock)
    err = error(
        bgr(bp.gaussian_blur(batch(photo), torch.tensor([sigma]))), stock)
    assert err.mean() < 0.5 and err.max() <= 2
    if sigma >= 1:  # and a blur at all
        assert error(photo, stock).mean() > 10


def test_solarize_matches_mmcv(photo):
    got = bgr(bp.solarize(batch(photo), torch.tensor([128.])))
    assert np.array_equal(got, mmcv.solarize(photo, 128))


def test_per_sample_parameters_and_jitter_order(photo):
    """A batch: every sample gets its own parameters and its own order of
    the four jitter steps, and equals mmpretrain's ColorJitter run with
    that sample's parameters and order."""
    op = bp.build_photometric_op(BYOL.view_pipeline2[2])
    params = op.draw(8, torch.Generator().manual_seed(3))
    params['applied'][:] = True
    got = op(batch(photo).repeat(8, 1, 1, 1), params)
    assert len({tuple(map(int, order)) for order in params['order']}) > 4
    reference = TRANSFORMS.build(BYOL.view_pipeline2[2]['transforms'][0])
    for i in range(8):
        draw = (params['order'][i].numpy(), *(float(params[name][i])
                                              for name in op.STEPS))
        reference._rand_params = lambda: draw
        expected = reference(dict(img=photo.copy()))['img']
        err = error(bgr(got[i:i + 1]), expected)
        assert err.mean() < 1.5, (i, draw)


# ----------------------------------------------------------- distributions
def stock_draws(pipeline, num, monkeypatch):
    """What mmpretrain's photometric steps apply to ``num`` images: per
    image, the jitter steps in order with their factors, grayscale, the
    blur radius and the solarisation threshold (None when not applied)."""
    record = {}
    for name in ('brightness', 'contrast', 'color', 'hue'):

        def adjust(img, factor=None, backend=None, _name=name, **kwargs):
            factor = kwargs.get('alpha', factor)
            if _name == 'hue':  # mmcv's whole levels of 1/255 turn
                factor = int(factor * 255)
            record.setdefault('jitter', []).append((_name, factor))
            return img

        monkeypatch.setattr(mmcv, f'adjust_{name}', adjust)

    def blur(radius):
        record['blur'] = radius
        return ImageFilter.BoxBlur(0)

    def solar(img, thr):
        record['solarize'] = thr
        return img

    monkeypatch.setattr(auto_augment.ImageFilter, 'GaussianBlur', blur)
    monkeypatch.setattr(mmcv, 'solarize', solar)
    steps = [TRANSFORMS.build(cfg) for cfg in split_view_pipeline(pipeline)[1]]
    gray = next(s for s in steps if type(s).__name__ == 'RandomGrayscale')
    draw_gray = gray._random_prob

    def recorded_gray():
        value = draw_gray()
        record['gray'] = value < gray.prob
        return value

    gray._random_prob = recorded_gray
    compose = Compose(steps)
    np.random.seed(0)
    random.seed(0)
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    draws = []
    for _ in range(num):
        record.clear()
        compose(dict(img=img.copy()))
        draws.append(dict(record))
    return draws


def device_draws(pipeline, num):
    """The same record of what the batched steps apply."""
    ops = bp.ViewPhotometric(split_view_pipeline(pipeline)[1])
    params = ops.draw(num, torch.Generator().manual_seed(0))
    draws = [{} for _ in range(num)]
    for op, p in zip(ops.ops, params):
        for i in p['applied'].nonzero().flatten().tolist():
            kind = type(op).__name__
            if kind == 'BatchColorJitter':
                draws[i]['jitter'] = [(name, float(p[step][i]))
                                      for step, name in zip(op.STEPS, LETTERS)]
                draws[i]['jitter'] = [
                    draws[i]['jitter'][step] for step in p['order'][i]
                ]
                for j, (name, value) in enumerate(draws[i]['jitter']):
                    if name == 'hue':  # whole levels
                        draws[i]['jitter'][j] = (name, round(value * 255))
            elif kind == 'BatchGrayscale':
                draws[i]['gray'] = True
            elif kind == 'BatchGaussianBlur':
                draws[i]['blur'] = float(p['sigma'][i])
            else:
                draws[i]['solarize'] = float(p['thr'][i])
    return draws


def summary(draws):
    """Rates of each step, the jitter factors, orders, blur radii."""
    out = defaultdict(list)
    for d in draws:
        out['rate_jitter'].append('jitter' in d)
        out['rate_gray'].append(d.get('gray', False))
        out['rate_blur'].append('blur' in d)
        out['rate_solarize'].append('solarize' in d)
        for name, factor in d.get('jitter', ()):
            out[name].append(factor)
        if 'jitter' in d:
            out['order'].append(''.join(LETTERS[n] for n, _ in d['jitter']))
        if d.get('blur') is not None:
            out['sigma'].append(d['blur'])
        if d.get('solarize') is not None:
            out['thr'].append(d['solarize'])
    return out


def two_sample_rate_z(a, b):
    """z of the difference between two Bernoulli rates."""
    pa, pb = np.mean(a), np.mean(b)
    pooled = (np.sum(a) + np.sum(b)) / (len(a) + len(b))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    return 0. if se == 0 else (pa - pb) / se


@pytest.mark.parametrize('name', sorted(PIPELINES))
def test_applied_parameters_have_mmpretrains_distribution(name, monkeypatch):
    """Over 3000 draws: every step's rate (|z| < 4), every continuous
    parameter (two-sample Kolmogorov-Smirnov, p > 1e-3), the jitter order
    (chi-square over the 24 orders, p > 1e-3)."""
    pipeline = PIPELINES[name]
    num = 3000
    stock = summary(stock_draws(pipeline, num, monkeypatch))
    ours = summary(device_draws(pipeline, num))
    for key in ('rate_jitter', 'rate_gray', 'rate_blur', 'rate_solarize'):
        assert abs(two_sample_rate_z(stock[key], ours[key])) < 4, key
    assert 0.75 < np.mean(ours['rate_jitter']) < 0.85
    for key in ('brightness', 'contrast', 'color', 'hue', 'sigma'):
        assert len(stock[key]) > 100 and len(ours[key]) > 100, key
        assert stats.ks_2samp(stock[key], ours[key]).pvalue > P_MIN, key
    orders = sorted(set(stock['order']) | set(ours['order']))
    assert len(orders) == 24
    table = [[stock['order'].count(o) for o in orders],
             [ours['order'].count(o) for o in orders]]
    assert stats.chi2_contingency(table).pvalue > P_MIN
    if stock['thr'] or ours['thr']:
        assert set(stock['thr']) == set(ours['thr']) == {128}


def test_the_distribution_test_can_fail(monkeypatch):
    """The same comparison rejects a brightness jitter of 0.3 instead of
    0.4, and a fixed jitter order."""
    pipeline = PIPELINES['byol_view1']
    stock = summary(stock_draws(pipeline, 3000, monkeypatch))
    wrong = [dict(step) for step in pipeline]
    wrong[2] = dict(
        wrong[2], transforms=[dict(wrong[2]['transforms'][0], brightness=0.3)])
    ours = summary(device_draws(wrong, 3000))
    assert stats.ks_2samp(stock['brightness'],
                          ours['brightness']).pvalue < P_MIN
    orders = sorted(set(stock['order']))
    fixed = ['bcsh'] * len(ours['order'])
    table = [[stock['order'].count(o) for o in orders],
             [fixed.count(o) for o in orders]]
    assert stats.chi2_contingency(table).pvalue < P_MIN
