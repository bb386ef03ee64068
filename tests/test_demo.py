"""tools/demo.py on a folder holding an unreadable image: it stops before
any training with an error naming the file and the switch, and
``--skip-unreadable`` leaves the file out of the figures' images and (through
``PhotoFolderDataset.skip_unreadable``) out of the training data."""
import os
import shutil

import pytest
from mmengine.config import Config, DictAction
from mmpretrain.registry import DATASETS

import ediy_mm.analysis.demo as demo
from ediy_mm.datasets import CorruptImageError
from helpers import load_tool


class Stop(Exception):
    """Raised by the spy in place of a training run."""


@pytest.fixture
def folder(tmp_path, photos_dir):
    """Five photos and one empty .jpg."""
    root = tmp_path / 'images'
    root.mkdir()
    for name in sorted(os.listdir(photos_dir))[:5]:
        shutil.copy(os.path.join(photos_dir, name), root / name)
    (root / 'empty.jpg').touch()
    return str(root)


def test_an_unreadable_image_stops_the_demo_before_training(
        tmp_path, folder, monkeypatch):

    def no_training(*args):
        raise AssertionError('training started')

    monkeypatch.setattr(demo, 'train_stage', no_training)
    with pytest.raises(CorruptImageError, match='empty.jpg') as error:
        load_tool('tools/demo.py').main([
            '--method', 'mosrep', '--images', folder, '--work-dir',
            str(tmp_path / 'work')
        ])
    assert '--skip-unreadable' in str(error.value)
    assert not (tmp_path / 'work').exists()


def test_skip_unreadable_reaches_the_figures_and_the_dataset(
        tmp_path, folder, monkeypatch, capsys):
    built = {}

    def build_the_stage_dataset(config, work_dir, options):
        """What tools/train.py would build from the stage's config and
        options: the data set (then stop)."""
        cfg = Config.fromfile(config)
        for option in options:
            key, value = option.split('=', 1)
            cfg.merge_from_dict({key: DictAction._parse_iterable(value)})
        built['dataset'] = DATASETS.build(cfg.train_dataloader.dataset)
        raise Stop

    monkeypatch.setattr(demo, 'train_stage', build_the_stage_dataset)
    work_dir = tmp_path / 'work'
    with pytest.raises(Stop):
        load_tool('tools/demo.py').main([
            '--method', 'mosrep', '--images', folder, '--work-dir',
            str(work_dir), '--skip-unreadable', '--repeat', '1'
        ])
    empty = os.path.join(folder, 'empty.jpg')
    assert f'skipping unreadable image {empty}' in capsys.readouterr().out
    dataset = built['dataset']
    assert dataset.skip_unreadable and dataset.skipped == {empty}
    assert len(dataset) == 5
    # the kNN monitor's classes are made of the readable photos only
    classes = os.listdir(work_dir / 'mosrep' / 'knn_crops' / 'train')
    assert len(classes) == 5 and 'empty' not in classes
