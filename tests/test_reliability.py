"""Resume after a real kill, and one clear error per bad input."""
import os
import os.path as osp
import shutil
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import worker_init_fn
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ediy_mm.datasets import CorruptImageError, epoch_seeded_worker_init_fn
from helpers import CPU_EDIY, run_train, train_then_kill, train_to_the_end

ITER_CFG = """_base_ = '{base}'
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='CosineAnnealingLR', T_max=4, by_epoch=False, begin=4, end=8)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval={interval}, max_keep_ckpts=20))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
"""


def iter_config(tmp_path, iters=8, interval=2):
    path = tmp_path / f'iter{iters}_{interval}.py'
    path.write_text(
        ITER_CFG.format(base=CPU_EDIY, iters=iters, interval=interval))
    return str(path)


def options(photos_dir, teacher):
    return [
        f'model.teacher.checkpoint={teacher}',
        f'train_dataloader.dataset.data_root={photos_dir}',
        'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0',
        # 64 px views (2 x 2 regions): these tests are about the run
        'train_dataloader.dataset.pipeline.0.transforms.0.0.scale=64'
    ]


def state(path):
    ckpt = torch.load(path, weights_only=False)
    return ckpt['state_dict'], ckpt['optimizer']['state'], ckpt['meta']


def test_sigkill_then_resume_is_bit_identical(tmp_path, photos_dir,
                                              byol_teacher):
    """Table 1's R-INS + R-IEM (TG): the teacher chooses the R-IEM
    regions and the R-INS partners are drawn from torch's generator, so
    both the teacher and the random state must survive the kill."""
    config = iter_config(tmp_path)
    opts = options(photos_dir,
                   byol_teacher) + ['model.head.rdem_negative=instance']
    run_a, run_b = str(tmp_path / 'a'), str(tmp_path / 'b')
    run_train(config, run_a, *opts)
    train_then_kill(config, run_b, opts, 'iter_4.pth')  # a real kill
    assert not osp.exists(osp.join(run_b, 'iter_8.pth'))

    out = run_train(config, run_b, *opts, extra=['--resume'])
    assert 'resumed' in out.lower()
    assert 'RandomStateHook: resumed the random state' in out
    weights_a, optim_a, meta_a = state(osp.join(run_a, 'iter_8.pth'))
    weights_b, optim_b, meta_b = state(osp.join(run_b, 'iter_8.pth'))
    assert meta_a['iter'] == meta_b['iter'] == 8
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:  # online, target (EMA steps too) and teacher
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert optim_a.keys() == optim_b.keys()
    for i in optim_a:
        for name, value in optim_a[i].items():
            assert torch.equal(value, optim_b[i][name]), (i, name)


def test_nan_stops_training_and_keeps_last_good_checkpoint(
        tmp_path, photos_dir, byol_teacher):
    config = iter_config(tmp_path, iters=6, interval=1)
    work_dir = str(tmp_path / 'nan')
    code, out = train_to_the_end(config, work_dir, [
        *options(photos_dir, byol_teacher), 'optim_wrapper.optimizer.lr=1e30'
    ])
    assert code != 0
    assert 'FloatingPointError: Non-finite loss at iteration' in out
    line = out[out.index('Non-finite loss at iteration'):].splitlines()[0]
    bad_iter = int(line.split('iteration ')[1].split()[0])
    assert 'loss_' in line and bad_iter >= 2
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    assert last.endswith(f'iter_{bad_iter - 1}.pth')
    weights, _, _ = state(last)
    assert all(
        torch.isfinite(v).all() for v in weights.values()
        if v.is_floating_point())


def build_photos(**kwargs):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return DATASETS.build(
            dict(
                type='PhotoFolderDataset',
                pipeline=[dict(type='LoadImageFromFile')],
                **kwargs))


def _folder_with(tmp_path, photos_dir, **files):
    folder = tmp_path / 'imgs'
    shutil.copytree(photos_dir, folder)
    for name, data in files.items():
        (folder / name.replace('_', '.')).write_bytes(data)
    return folder


def _truncated_png(photos_dir):
    """A PNG whose header reads but whose pixels do not."""
    data = open(osp.join(photos_dir, 'astronaut.png'), 'rb').read()
    return data[:len(data) // 3]


def test_not_an_image_is_named_when_the_dataset_is_built(tmp_path, photos_dir):
    folder = _folder_with(
        tmp_path, photos_dir, broken_jpg=b'\xff\xd8 not a jpeg')
    with pytest.raises(CorruptImageError, match='broken.jpg') as err:
        build_photos(data_root=str(folder))
    assert 'skip_unreadable=True' in str(err.value)


def test_corrupt_image_body_names_the_file(tmp_path, photos_dir):
    folder = _folder_with(
        tmp_path, photos_dir, cut_png=_truncated_png(photos_dir))
    dataset = build_photos(data_root=str(folder))  # the header reads
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    with pytest.raises(CorruptImageError, match='cut.png'):
        dataset[paths.index(str(folder / 'cut.png'))]


def test_skip_unreadable_images_warns_once_and_counts(tmp_path, photos_dir,
                                                      caplog):
    folder = _folder_with(
        tmp_path,
        photos_dir,
        broken_jpg=b'\xff\xd8 not a jpeg',
        cut_png=_truncated_png(photos_dir))
    dataset = build_photos(data_root=str(folder), skip_unreadable=True)
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    assert str(folder / 'broken.jpg') not in paths  # dropped at build time
    assert dataset.skipped == {str(folder / 'broken.jpg')}
    cut = paths.index(str(folder / 'cut.png'))
    for _ in range(2):  # another image comes instead, one warning
        assert dataset[cut]['img_path'] != str(folder / 'cut.png')
    assert dataset.skipped == {
        str(folder / 'broken.jpg'),
        str(folder / 'cut.png')
    }


def test_missing_or_empty_dataset_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='no_such_dir'):
        build_photos(data_root=str(tmp_path / 'no_such_dir'))
    with pytest.raises(FileNotFoundError, match='No image'):
        build_photos(data_root=str(tmp_path))


def test_missing_teacher_fails_before_training(tmp_path, photos_dir):
    missing = str(tmp_path / 'byol_teacher_missing.pth')
    code, out = train_to_the_end(CPU_EDIY, str(tmp_path / 'w'),
                                 options(photos_dir, missing))
    assert code != 0
    assert 'FileNotFoundError' in out and 'byol_teacher_missing.pth' in out
    assert 'Epoch(train)' not in out


class _Killed(BaseException):
    """Stands for a SIGKILL arriving at a chosen point of a write."""


class _Toy(BaseModel):
    """A linear model whose loss draws from torch's generator (dropout)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 4)

    def forward(self, inputs, data_samples=None, mode='loss'):
        out = torch.nn.functional.dropout(self.linear(inputs), 0.5, True)
        return dict(loss=out.pow(2).mean())


class _Augmented(Dataset):
    """8 points plus numpy noise, as a random augmentation would add."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        noise = torch.from_numpy(np.random.randn(2)).float()
        return (torch.full((2, ), float(index)) + noise, )


def train_toy(work_dir,
              steps=3,
              by_epoch=False,
              resume=False,
              hooks=('RandomStateHook', ),
              data=None,
              **loader):
    """Train the toy for ``steps`` iterations (or epochs of 4 iterations)
    with a checkpoint after each; return its final weights."""
    torch.manual_seed(0)
    if data is None:
        data = TensorDataset(torch.randn(8, 2, generator=torch.Generator()))
    runner = Runner(
        model=_Toy(),
        work_dir=work_dir,
        experiment_name=f'toy_{osp.basename(work_dir)}_{steps}',
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        resume=resume,
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            **loader),
        train_cfg=dict(by_epoch=by_epoch, max_epochs=steps)
        if by_epoch else dict(by_epoch=False, max_iters=steps),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type=hook) for hook in hooks],
        default_hooks=dict(
            logger=None,
            checkpoint=dict(
                type='AtomicCheckpointHook',
                by_epoch=by_epoch,
                interval=1,
                max_keep_ckpts=1)))
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize('by_epoch', [False, True])
@pytest.mark.parametrize('with_hook', [True, False])
def test_resume_restores_the_random_state(tmp_path, by_epoch, with_hook):
    """An uninterrupted run against one stopped after 2 steps and resumed
    to 3: the same weights with RandomStateHook, not without it (mmengine
    alone re-seeds the generators on resume)."""
    hooks = ('RandomStateHook', ) if with_hook else ()
    kwargs = dict(by_epoch=by_epoch, hooks=hooks)
    whole = train_toy(str(tmp_path / 'whole'), 3, **kwargs)
    train_toy(str(tmp_path / 'cut'), 2, **kwargs)
    resumed = train_toy(str(tmp_path / 'cut'), 3, resume=True, **kwargs)
    same = all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert same == with_hook


def test_resume_with_workers_replays_their_augmentations(tmp_path):
    """Epoch-based, 2 workers restarted every epoch: with their seeds drawn
    by epoch_seeded_worker_init_fn from the restored torch generator, the
    resumed run sees the augmentations of the uninterrupted one."""
    kwargs = dict(
        by_epoch=True,
        data=_Augmented(),
        num_workers=2,
        persistent_workers=False,
        worker_init_fn=dict(type='epoch_seeded_worker_init_fn'))
    whole = train_toy(str(tmp_path / 'whole'), 3, **kwargs)
    train_toy(str(tmp_path / 'cut'), 2, **kwargs)
    resumed = train_toy(str(tmp_path / 'cut'), 3, resume=True, **kwargs)
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def epochs_of_noise(worker_init_fn, epochs=2):
    """What a 2-worker loader over :class:`_Augmented` yields per epoch."""
    torch.manual_seed(0)
    loader = DataLoader(
        _Augmented(),
        batch_size=2,
        num_workers=2,
        worker_init_fn=worker_init_fn)
    return [torch.cat([b[0] for b in loader]) for _ in range(epochs)]


def test_worker_augmentations_change_every_epoch():
    mmengine_default = partial(worker_init_fn, num_workers=2, rank=0, seed=0)
    first, second = epochs_of_noise(mmengine_default)
    assert torch.equal(first, second)  # why ours exists
    first, second = epochs_of_noise(epoch_seeded_worker_init_fn)
    assert not torch.equal(first, second)
    # and a function of the seed: the same again from the same seed
    assert torch.equal(epochs_of_noise(epoch_seeded_worker_init_fn)[1], second)


@pytest.mark.parametrize('killed_writing', ['iter_3.pth', 'last_checkpoint'])
def test_kill_while_saving_keeps_a_complete_checkpoint(tmp_path, monkeypatch,
                                                       killed_writing):
    """With max_keep_ckpts=1 mmengine's own hook deletes iter_2.pth before
    writing iter_3.pth; ours keeps it until iter_3.pth and the pointer to
    it are complete."""
    replace = os.replace

    def replace_or_die(src, dst):
        if killed_writing == 'last_checkpoint':  # when it names iter_3
            dies = dst.endswith(killed_writing) and open(src).read().endswith(
                'iter_3.pth')
        else:
            dies = dst.endswith(killed_writing)
        if dies:
            raise _Killed
        replace(src, dst)

    monkeypatch.setattr(os, 'replace', replace_or_die)
    work_dir = str(tmp_path / 'toy')
    with pytest.raises(_Killed):
        train_toy(work_dir, 3)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read()
    assert last == osp.join(work_dir, 'iter_2.pth')
    _, _, meta = state(last)
    assert meta['iter'] == 2
    left = sorted(os.listdir(work_dir))
    assert not any('.tmp-' in name for name in left), left


def test_checkpoint_rotation(tmp_path):
    work_dir = str(tmp_path / 'toy')
    train_toy(work_dir, 4)
    ckpts = sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))
    assert ckpts == ['iter_4.pth']
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, 'iter_4.pth')


def test_finite_loss_hook_reads_losses_without_autograd_warning():
    import warnings

    from ediy_mm.engine import FiniteLossHook
    loss = torch.tensor(1.5, requires_grad=True) * 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # any warning fails the test
        FiniteLossHook().after_train_iter(
            None, 0, outputs=dict(loss=loss, loss_byol=loss))
    with pytest.raises(FloatingPointError, match='loss_rdem=nan'):
        FiniteLossHook().after_train_iter(
            SimpleNamespace(iter=3, epoch=0),
            0,
            outputs=dict(loss=loss, loss_rdem=loss * float('nan')))
