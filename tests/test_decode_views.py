"""DecodeMultiView: mmpretrain's stock path exactly, and the device path's
crops where the stock ones are, with JPEG draft decoding too."""
import random

import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.hub import get_config
from mmpretrain.registry import TRANSFORMS
from PIL import Image
from skimage import data

import ediy_mm  # noqa: F401
from ediy_mm.datasets import DecodeMultiView, split_view_pipeline
from ediy_mm.datasets.decode_views import draft_scale

BYOL = get_config('mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py')


def views_at(size):
    """BYOL's two view pipelines at ``size`` px."""
    return [[
        dict(step, scale=size) if step['type'] == 'RandomResizedCrop' else step
        for step in pipeline
    ] for pipeline in (BYOL.view_pipeline1, BYOL.view_pipeline2)]


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Real photos as a JPEG (512 x 512), a PNG and a JPEG whose EXIF
    turns it a quarter (orientation 6)."""
    folder = tmp_path_factory.mktemp('decode')
    paths = dict(
        jpeg=str(folder / 'astronaut.jpg'),
        png=str(folder / 'chelsea.png'),
        turned=str(folder / 'coffee.jpg'))
    Image.fromarray(data.astronaut()).save(paths['jpeg'], quality=92)
    Image.fromarray(data.chelsea()).save(paths['png'])
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(data.coffee()).save(paths['turned'], quality=92, exif=exif)
    return paths


def run(pipeline, path, seed=0):
    """``pipeline`` on the image at ``path`` from a fixed random state;
    the views and the random state after."""
    np.random.seed(seed)
    random.seed(seed)
    out = pipeline(dict(img_path=path))
    return out, np.random.get_state()[1].copy(), np.random.get_state()[2]


def stock(transforms, imdecode_backend='cv2'):
    """mmpretrain's ``LoadImageFromFile`` + ``MultiView``."""
    return Compose([
        TRANSFORMS.build(
            dict(type='LoadImageFromFile', imdecode_backend=imdecode_backend)),
        TRANSFORMS.build(
            dict(type='MultiView', num_views=[1, 1], transforms=transforms))
    ])


@pytest.mark.parametrize('name', ['jpeg', 'png'])
def test_cpu_mode_is_mmpretrains_stock_pipeline(images, name):
    views = views_at(64)
    ours = DecodeMultiView([1, 1], views, photometric='cpu')
    for seed in range(3):
        got, state, _ = run(ours, images[name], seed)
        want, want_state, _ = run(stock(views), images[name], seed)
        assert got['photometric'] == 'cpu'
        assert all(
            np.array_equal(a, b) for a, b in zip(got['img'], want['img']))
        assert np.array_equal(state, want_state)


@pytest.mark.parametrize('name', ['jpeg', 'png', 'turned'])
def test_device_mode_crops_and_flips_as_the_stock_pipeline(images, name):
    """Without draft decoding the views are the stock pipeline's geometric
    steps: the same decode, the same np.random draws, the same crops, and
    torchvision's resize within a level of PIL's; only the photometric
    steps are left out."""
    views = views_at(64)
    geometric = [split_view_pipeline(p)[0] for p in views]
    ours = DecodeMultiView([1, 1], views, draft=False)
    for seed in range(4):
        got, state, pos = run(ours, images[name], seed)
        want, want_state, want_pos = run(stock(geometric), images[name], seed)
        assert got['photometric'].startswith('device:')
        assert np.array_equal(state, want_state) and pos == want_pos
        assert got['ori_shape'] == want['ori_shape']
        for a, b in zip(got['img'], want['img']):
            assert a.shape == b.shape == (64, 64, 3)
            err = np.abs(a.astype(int) - b)
            assert err.max() <= 1 and err.mean() < 0.05


def test_draft_decoding_keeps_the_crop_geometry(images):
    """JPEG draft decoding, used when every crop shrinks by 2 or more:
    the same np.random draws and the same crop boxes (on the full-size
    geometry); pixels close to the full-size decode's, and far from those
    of any other crop."""
    views = views_at(64)
    drafted = DecodeMultiView([1, 1], views)
    full = DecodeMultiView([1, 1], views, draft=False)
    used, errors = 0, []
    for seed in range(12):
        got, state, pos = run(drafted, images['jpeg'], seed)
        want, want_state, want_pos = run(full, images['jpeg'], seed)
        assert np.array_equal(state, want_state) and pos == want_pos
        other, _, _ = run(full, images['jpeg'], seed + 100)
        for a, b, c in zip(got['img'], want['img'], other['img']):
            err = np.abs(a.astype(int) - b).mean()
            errors.append(err)
            assert err < 0.25 * np.abs(a.astype(int) - c).mean()
        used += not all(
            np.array_equal(a, b) for a, b in zip(got['img'], want['img']))
    assert used >= 3  # 64 px crops of a 512 px image often shrink >= 2x
    assert np.mean(errors) < 3


def test_draft_scale():
    assert draft_scale([(300, 400), (128, 200)], [(64, 64), (64, 64)]) == 2
    assert draft_scale([(300, 400), (600, 800)], [(64, 64), (64, 64)]) == 4
    assert draft_scale([(100, 400)], [(64, 64)]) == 1
    assert draft_scale([(1024, 1024)], [(64, 64)]) == 8


def test_unsplittable_pipelines_are_refused():
    views = views_at(64)
    with pytest.raises(ValueError, match='Resize cannot be split'):
        DecodeMultiView(1, [[*views[0], dict(type='Resize', scale=32)]])
    with pytest.raises(ValueError, match='RandomResizedCrop'):
        DecodeMultiView(1, [views[0][1:]])
    with pytest.raises(ValueError, match="backend='pillow'"):
        DecodeMultiView(1, [[dict(views[0][0], backend='cv2')]])
    with pytest.raises(ValueError, match='num_views'):
        DecodeMultiView([1, 1], views[:1])
