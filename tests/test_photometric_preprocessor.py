"""PhotometricDataPreprocessor: what it augments, its generator in the
checkpoint, per-process draws, and training with it under 2-process DDP
and --resume."""
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from mmpretrain.models import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

import ediy_mm  # noqa: F401
from ediy_mm.datasets.decode_views import photometric_fingerprint
from ediy_mm.models.utils import PhotometricDataPreprocessor, process_random
import rank_dump_hook  # noqa: F401 (AugmentSeedDumpHook)
from helpers import CPU_BYOL, PAPER_CONFIGS, ROOT, run_dist_train

BYOL = get_config('mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py')
NORM = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)


def build(seed=0, **kwargs):
    return MODELS.build(
        dict(
            type='PhotometricDataPreprocessor',
            num_views=[1, 1],
            transforms=[BYOL.view_pipeline1, BYOL.view_pipeline2],
            seed=seed,
            **NORM,
            **kwargs))


DEVICE = photometric_fingerprint([1, 1],
                                 [BYOL.view_pipeline1, BYOL.view_pipeline2])


def batch(mark=DEVICE, size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = [
        torch.randint(
            0, 256, (size, 3, 16, 16), generator=g, dtype=torch.uint8)
        for _ in range(2)
    ]
    samples = [DataSample() for _ in range(size)]
    for sample in samples:
        if mark is not None:
            sample.set_metainfo(dict(photometric=mark))
    return dict(inputs=views, data_samples=samples)


def test_device_views_are_augmented_cpu_views_only_normalised():
    plain = SelfSupDataPreprocessor(**NORM)
    ours = build()
    stock = plain(batch('cpu'), True)['inputs']
    for got, want in zip(ours(batch('cpu'), True)['inputs'], stock):
        assert torch.equal(got, want)  # the stock pipeline
    for mark in (DEVICE, None):  # no augmentation or check outside training
        for got, want in zip(ours(batch(mark), False)['inputs'], stock):
            assert torch.equal(got, want)
    augmented = ours(batch(), True)['inputs']
    assert [x.shape for x in augmented] == [x.shape for x in stock]
    # view 1 is always blurred (BYOL's blur p = 1)
    assert all(not torch.equal(a[i], s[i]) for a, s in zip(augmented, stock)
               for i in range(4))
    # and the same as augmenting by hand with the batch generator
    replay = build()
    generator = replay.batch_generator()
    views = [x[:, [2, 1, 0]].float() for x in batch()['inputs']]
    for (pipeline, _), view, got in zip(replay.groups, views, augmented):
        view = pipeline(view, pipeline.draw(4, generator))
        assert torch.allclose((view - replay.mean) / replay.std, got)


def test_mixed_or_mismatched_views_are_refused():
    # a PackInputs without meta_keys=['photometric'] dropped the mark: the
    # views would train with no colour augmentation
    message = re.escape("PackInputs(meta_keys=[..., 'photometric'])")
    with pytest.raises(ValueError, match=message):
        build()(batch(None), True)
    mixed = batch()
    mixed['data_samples'][0].set_metainfo(dict(photometric='cpu'))
    with pytest.raises(ValueError, match='mixing'):
        build()(mixed, True)
    other = photometric_fingerprint([1, 1],
                                    [BYOL.view_pipeline1, BYOL.view_pipeline1])
    with pytest.raises(ValueError, match='num_views and transforms'):
        build()(batch(other), True)
    one_view = batch()
    one_view['inputs'] = one_view['inputs'][:1]
    with pytest.raises(ValueError, match='holds 1'):
        build()(one_view, True)
    with pytest.raises(ValueError, match='keep_channels=True'):
        MODELS.build(
            dict(
                type='PhotometricDataPreprocessor',
                num_views=1,
                transforms=[[dict(type='RandomGrayscale', prob=0.2)]]))


def test_generator_state_travels_with_the_state_dict():
    """mmengine saves the generator's current state; loading it continues
    the draws exactly."""
    model = build(seed=1)
    model(batch(), True)
    state = get_state_dict(model)
    after = [x.clone() for x in model(batch(seed=1), True)['inputs']]
    resumed = build(seed=2)
    load_state_dict(resumed, state, strict=True)
    for got, want in zip(resumed(batch(seed=1), True)['inputs'], after):
        assert torch.equal(got, want)


def test_processes_draw_their_own_and_stay_in_step(monkeypatch):
    seeds, states = [], []
    for rank in (0, 1):
        monkeypatch.setattr(
            process_random, 'get_dist_info', lambda r=rank: (r, 2))
        model = build(seed=3)
        seeds.append(model.batch_generator().initial_seed())
        states.append(model.generator.get_state())
    assert seeds[0] != seeds[1]
    assert torch.equal(states[0], states[1])


#: The CPU BYOL, small and short, with every rank's augmentation seeds
#: recorded (tests/rank_dump_hook.py).
RECORDED = dict(
    custom_imports=dict(
        imports=['ediy_mm', 'rank_dump_hook'], allow_failed_imports=False),
    custom_hooks=[
        dict(type='RandomStateHook'),
        dict(type='AugmentSeedDumpHook')
    ])
SMALL = {
    'train_dataloader.dataset.repeat': 1,
    'train_dataloader.batch_size': 4,
    'train_dataloader.drop_last': True,
    'train_dataloader.dataset.pipeline.0.transforms.0.0.scale': 64,
    'train_dataloader.num_workers': 0,
    'randomness.seed': 0,
    'model.neck.hid_channels': 64,
    'model.head.predictor.hid_channels': 64
}


def seeds(work_dir, rank=0):
    path = work_dir / f'augment_rank{rank}.json'
    return {int(k): v for k, v in json.loads(path.read_text()).items()}


def test_two_processes_draw_different_augmentations(tmp_path, photos_dir):
    """The CPU BYOL under tools/dist_train.sh (2 gloo processes): at every
    iteration the processes draw from different generators."""
    config = tmp_path / 'cfg.py'
    config.write_text(f"_base_ = '{CPU_BYOL}'\n" +
                      '\n'.join(f'{k} = {v!r}' for k, v in RECORDED.items()))
    run_dist_train(config, tmp_path / 'dist',
                   f'train_dataloader.dataset.data_root={photos_dir}',
                   'train_cfg.max_epochs=1',
                   *(f'{k}={v}' for k, v in SMALL.items()),
                   'train_dataloader.batch_size=2')
    ranks = [seeds(tmp_path / 'dist', rank) for rank in (0, 1)]
    assert len(ranks[0]) >= 2 and ranks[0].keys() == ranks[1].keys()
    assert all(ranks[0][i] != ranks[1][i] for i in ranks[0])


def test_resumed_run_draws_the_same_augmentations(tmp_path, photos_dir):
    """The CPU BYOL through the Runner: a run resumed from its epoch-1
    checkpoint draws, in epoch 2, the augmentations of the uninterrupted
    run (the generator's state is in the checkpoint)."""
    cfg = Config.fromfile(CPU_BYOL)
    cfg.merge_from_dict(
        dict(RECORDED, **SMALL,
             **{'train_dataloader.dataset.data_root': photos_dir}))
    runs, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores
    try:
        for name, resume in (('whole', None), ('resumed',
                                               'whole/epoch_1.pth')):
            run = cfg.copy()
            run.work_dir = str(tmp_path / name)
            run.experiment_name = f'photometric_{name}'
            if resume:
                run.resume, run.load_from = True, str(tmp_path / resume)
            Runner.from_cfg(run).train()
            runs[name] = seeds(tmp_path / name)
    finally:
        torch.set_num_threads(threads)
    whole, resumed = runs['whole'], runs['resumed']
    assert len(whole) >= 4 and resumed and resumed.keys() < whole.keys()
    assert min(resumed) == len(whole) // 2  # epoch 2 only
    assert all(whole[i] == resumed[i] for i in resumed)
    assert len(set(whole.values())) == len(whole)


@pytest.mark.parametrize('config', [
    'ediy/byol_resnet18_cpu-128px_photos.py',
    'ediy/ediy_resnet18_cpu-128px_photos.py',
    'mosrep/mosrep_resnet18_cpu-64px_photos.py',
    'mosrep/mosrep-byol_resnet18_cpu-128px_photos.py',
    'mosrep/ediy-mosaic_resnet18_cpu-128px_photos.py',
    'univip/univip_resnet18_cpu-64px_photos.py'
] + [osp.relpath(path, osp.join(ROOT, 'configs')) for path in PAPER_CONFIGS])
def test_paper_and_cpu_configs_use_the_device_path(config):
    """Their workers leave the photometric steps to the device, mark the
    samples, and the preprocessor holds exactly those steps; one option
    gives the stock path back."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    pipeline = cfg.train_dataloader.dataset.pipeline
    step = 1 if 'univip' in config else 0
    views = TRANSFORMS.build(pipeline[step])
    preprocessor = MODELS.build(cfg.data_preprocessor)
    assert isinstance(preprocessor, PhotometricDataPreprocessor)
    assert views.mark.startswith('device:')
    assert views.mark == preprocessor.mark
    assert 'photometric' in pipeline[-1].meta_keys
    cfg.merge_from_dict(
        {f'train_dataloader.dataset.pipeline.{step}.photometric': 'cpu'})
    stock = cfg.train_dataloader.dataset.pipeline[step]
    assert TRANSFORMS.build(stock).mark == 'cpu'
