import os.path as osp

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from helpers import BACKBONE, CPU_BYOL, run_train


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Each test starts in mmpretrain's default scope, whatever scope a
    Runner built by an earlier test left current."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(scope='session')
def photos_dir(tmp_path_factory) -> str:
    """scikit-image's photos exported once for the session."""
    from ediy_mm.datasets import export_skimage_photos
    folder = str(tmp_path_factory.mktemp('photos'))
    assert len(export_skimage_photos(folder)) >= 5
    return folder


@pytest.fixture(scope='session')
def photo_proposals(tmp_path_factory, photos_dir) -> str:
    """UniVIP's proposals of the photos, computed once for the session with
    the proposal tool's library."""
    from ediy_mm.datasets import list_images
    from ediy_mm.datasets.univip_boxes import BoxRules
    from ediy_mm.datasets.univip_proposals import compute_proposals
    out = str(tmp_path_factory.mktemp('univip') / 'proposals.json')
    compute_proposals(
        photos_dir,
        list_images(photos_dir, relative=True),
        out,
        BoxRules(min_size=64),
        max_side=96,
        progress=False)
    return out


@pytest.fixture(scope='session')
def byol_teacher(tmp_path_factory, photos_dir) -> str:
    """A BYOL ResNet-18 trained for a few iterations through tools/train.py
    (stage 1 of the paper), used as E-DIY's teacher."""
    work_dir = str(tmp_path_factory.mktemp('byol_teacher'))
    run_train(CPU_BYOL, work_dir, f'train_dataloader.dataset.data_root='
              f'{photos_dir}', 'train_dataloader.dataset.repeat=2',
              'train_dataloader.num_workers=0', 'train_cfg.max_epochs=1')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


@pytest.fixture(scope='session')
def teacher_ckpt(tmp_path_factory):
    """A ResNet-18 saved the way mmengine saves a self-supervised model."""
    torch.manual_seed(1)
    backbone = MODELS.build(BACKBONE)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['neck.fc0.weight'] = torch.zeros(2, 2)
    path = tmp_path_factory.mktemp('teacher') / 'byol_r18.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=state), path)
    return str(path)
