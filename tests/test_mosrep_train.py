"""MosRep's CPU config through the real Runner: tools/train.py, exact
resume, two gloo processes as under tools/dist_train.sh (where the
positives must point at the right gathered keys), and the analysis tools
on its checkpoint.

This module is also imported by the two-process run (``custom_imports``)
for :class:`MosRepPositivesProbeHook`.
"""
import json
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dist import all_gather, broadcast, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS, MODELS
from test_distributed import dist_jobs
from test_mosrep import one_thread  # noqa: F401 (autouse fixture)

from ediy_mm.analysis import load_backbone
from ediy_mm.models.algorithms import rank_offset
from ediy_mm.models.utils.mosaic import MosaicSampler
from helpers import ROOT, load_tool, run_train

CPU_MOSREP = osp.join(ROOT,
                      'configs/mosrep/mosrep_resnet18_cpu-64px_photos.py')
#: Images per process in the probe (not 4, so that (b - k) mod B wraps).
PROBE_BATCH = 3
#: The CPU config at a quarter of ResNet-18's width (128 channels in layer
#: 4) for the training runs: they check the plumbing, not the capacity.
NARROW = ('model.backbone.stem_channels=16', 'model.backbone.base_channels=16',
          'model.neck.in_channels=128', 'model.neck.hid_channels=128')


def probe_positives(model) -> dict:
    """Run on every process after training: which gathered key each
    mosaic cell's positive is, against what it should be.

    Every process rebuilds the inputs of all processes (same seed): crop
    ``k`` of image ``g`` (global index ``rank * B + b``) is the constant
    ``g``, so a cell's pixels say which image fills it.
    """
    rank, world_size = get_dist_info()
    size = PROBE_BATCH
    for buffer in model.buffers():  # BN statistics are per process on CPU
        broadcast(buffer, 0)
    model.eval()
    model.mosaic = MosaicSampler(jitter_prob=0.)
    gen = torch.Generator().manual_seed(100)
    queries = torch.randn(world_size * size, 3, 64, 64, generator=gen)
    keys_in = torch.randn(world_size * size, 3, 64, 64, generator=gen)
    ids = torch.arange(world_size * size, dtype=torch.float32)
    crops = ids.view(-1, 1, 1, 1, 1).expand(-1, 4, 3, 32, 32)
    mine = slice(rank * size, (rank + 1) * size)
    inputs = [queries[mine], keys_in[mine], *crops[mine].unbind(1)]
    result = dict(offset=rank_offset(size))
    with torch.no_grad():
        mosaic = model.mosaic(crops[mine], result['offset'])
        content = [[
            mosaic.images[b, :, int(y1):int(y2),
                          int(x1):int(x2)].unique().tolist()
            for x1, y1, x2, y2 in mosaic.boxes[b].tolist()
        ] for b in range(size)]
        result['sources'] = mosaic.sources.tolist()
        result['content'] = [[c[0] if len(c) == 1 else c for c in row]
                             for row in content]
        keys = torch.cat(all_gather(model.embed_keys(inputs[1])))
        expected = F.normalize(model.target_net(keys_in)[0], dim=1)
        result['keys_in_global_order'] = bool(
            torch.allclose(keys, expected, atol=1e-5))
        queue = model.queue.clone()
        cells = model.embed_cells(mosaic).double()
        losses = model.loss(inputs, None)
        naive = 0.
        for b in range(size):
            for k in range(4):
                q = F.normalize(cells[b * 4 + k], dim=0)
                logits = torch.cat(
                    [expected.double() @ q,
                     queue.double().t() @ q]) / 0.2
                target = rank * size + (b - k) % size
                naive += torch.logsumexp(logits, 0) - logits[target]
        result['loss_mosaic'] = float(losses['loss_mosaic'])
        result['naive_loss_mosaic'] = float(naive / (4 * size))
    try:
        rank_offset(size + rank)
    except ValueError as err:
        result['unequal_batches'] = str(err)
    return result


@HOOKS.register_module()
class MosRepPositivesProbeHook(Hook):
    """Test-only: after training, every process writes
    :func:`probe_positives` to ``probe_rank{rank}.json``."""

    def after_run(self, runner) -> None:
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        path = osp.join(runner.work_dir,
                        f'probe_rank{get_dist_info()[0]}.json')
        with open(path, 'w') as f:
            json.dump(probe_positives(model), f)


def checkpoint(path):
    ckpt = torch.load(path, weights_only=False)
    return ckpt['state_dict'], ckpt['optimizer']['state'], ckpt['meta']


def test_cpu_config_trains_and_resumes_exactly(tmp_path, photos_dir,
                                               monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # 2 shared cores
    opts = (*NARROW, f'train_dataloader.dataset.data_root={photos_dir}',
            'train_dataloader.dataset.repeat=1', 'randomness.seed=0')
    run_a, run_b = tmp_path / 'a', tmp_path / 'b'
    out = run_train(CPU_MOSREP, str(run_a), *opts)
    assert 'loss_plain' in out and 'loss_mosaic' in out
    out = run_train(
        CPU_MOSREP,
        str(run_b),
        *opts,
        extra=['--resume', str(run_a / 'epoch_1.pth')])
    assert 'RandomStateHook: resumed the random state' in out
    weights_a, optim_a, meta_a = checkpoint(run_a / 'epoch_2.pth')
    weights_b, optim_b, meta_b = checkpoint(run_b / 'epoch_2.pth')
    assert meta_a['iter'] == meta_b['iter'] >= 2
    assert weights_a.keys() == weights_b.keys()
    assert {'queue', 'queue_ptr', 'target_net.steps'} <= weights_a.keys()
    for key in weights_a:  # online, key encoder, queue and its pointer
        assert torch.equal(weights_a[key], weights_b[key]), key
    for i in optim_a:
        for name, value in optim_a[i].items():
            assert torch.equal(value, optim_b[i][name]), (i, name)
    assert int(weights_a['queue_ptr']) == meta_a['iter'] * 8 % 256


def test_tools_take_a_mosrep_checkpoint_and_config(tmp_path, photos_dir):
    """The analysis tools read the online backbone of a MosRep checkpoint
    (the CPU config's model, saved as the Runner saves it); the mosaic
    tool runs the config's own pipeline."""
    MessageHub.get_current_instance().update_info('max_iters', 1)
    model = MODELS.build(Config.fromfile(CPU_MOSREP).model)
    path = str(tmp_path / 'mosrep.pth')
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    extractor = load_backbone(path)
    assert torch.equal(extractor.backbone.conv1.weight,
                       model.backbone.conv1.weight)
    figure = tmp_path / 'matches.png'
    load_tool('tools/visualization/region_matches.py').main(
        [path, '--size', '64', '--out',
         str(figure)])
    assert figure.stat().st_size > 0
    mosaics = tmp_path / 'mosaics.png'
    result = load_tool('tools/visualization/mosaic_views.py').main([
        CPU_MOSREP, '--images', photos_dir, '--batch-size', '3', '--out',
        str(mosaics)
    ])
    assert mosaics.stat().st_size > 0
    assert result['sources'] == [[0, 2, 1, 0], [1, 0, 2, 1], [2, 1, 0, 2]]


#: The BYOL-base variants as a user runs them on several GPUs: gradient
#: accumulation on (as the E-DIY paper config), without
#: find_unused_parameters.
VARIANTS = ('mosrep-byol', 'ediy-mosaic')


@pytest.fixture(scope='module')
def dist_runs(tmp_path_factory, photos_dir, byol_teacher):
    """2 processes, one launch: MosRep with the positives probe (4 images
    per process), then the BYOL-base variants (2 per process)."""
    folder = tmp_path_factory.mktemp('mosrep_dist')
    config = folder / 'probe_cfg.py'
    config.write_text(
        f"_base_ = '{CPU_MOSREP}'\n"
        "custom_imports = dict(imports=['ediy_mm', 'rank_dump_hook', "
        "'test_mosrep_train'], allow_failed_imports=False)\n"
        'custom_hooks = _base_.custom_hooks + ['
        "dict(type='RankDumpHook'), dict(type='MosRepPositivesProbeHook')]\n")
    data = f'train_dataloader.dataset.data_root={photos_dir}'
    jobs = dict(
        probe=(config, [*NARROW, data, 'train_dataloader.batch_size=4']))
    for name in VARIANTS:
        teacher = ([f'model.teacher.checkpoint={byol_teacher}']
                   if name == 'ediy-mosaic' else [])
        jobs[name] = (osp.join(ROOT, 'configs/mosrep',
                               f'{name}_resnet18_cpu-128px_photos.py'), [
                                   *NARROW, *teacher, data,
                                   'optim_wrapper.accumulative_counts=2'
                               ])
    return folder, dist_jobs(jobs, folder)


def test_two_processes_positives_point_at_the_gathered_keys(dist_runs):
    folder, runs = dist_runs
    assert 'Epoch(train)' in runs['probe']
    work_dir = folder / 'probe'
    rank0, rank1 = (torch.load(work_dir / f'rank{r}.pth') for r in (0, 1))
    for key in rank0:  # one model: DDP averaged the gradients
        assert torch.equal(rank0[key], rank1[key]), key
    weights, _, meta = checkpoint(work_dir / 'epoch_1.pth')
    # 4 images x 2 processes gathered into the queue at every step
    assert int(weights['queue_ptr']) == meta['iter'] * 8

    size = PROBE_BATCH
    for rank in (0, 1):
        probe = json.loads((work_dir / f'probe_rank{rank}.json').read_text())
        assert probe['offset'] == rank * size
        expected = [[rank * size + (b - k) % size for k in range(4)]
                    for b in range(size)]
        assert probe['sources'] == expected
        assert probe['content'] == expected  # the cell shows that image
        assert probe['keys_in_global_order']  # shuffle BN undone, gathered
        assert abs(probe['loss_mosaic'] -
                   probe['naive_loss_mosaic']) < 1e-4 * probe['loss_mosaic']
        assert '[3, 4]' in probe['unequal_batches']


@pytest.mark.parametrize('name', VARIANTS)
def test_byol_variants_train_under_ddp_with_accumulation(dist_runs, name):
    out = dist_runs[1][name]
    lines = [ln for ln in out.splitlines() if 'Epoch(train)' in ln]
    assert len(lines) >= 2 and all('loss_mosaic' in ln for ln in lines)
