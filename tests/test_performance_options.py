"""The performance options of E-DIY (teacher precision / memory format,
inference mode, shared normalisations) keep the numbers, and the step
benchmark tool runs. No timing is asserted."""
import json

import pytest
import torch
from mmpretrain.registry import MODELS

from ediy_mm.models import FrozenTeacher, weights_fingerprint
from ediy_mm.models.losses import (match_regions, matched_cosine,
                                   random_partners, rdem_instance_loss,
                                   rdem_loss, riem_loss)
from ediy_mm.models.losses.ediy_losses import teacher_matches
from helpers import BACKBONE, PRED, build_ediy, load_tool, views

TEACHER_BACKBONE = dict(BACKBONE, out_indices=(3, ))


def _teacher(path, **kw):
    teacher = FrozenTeacher(path, backbone=TEACHER_BACKBONE, **kw)
    teacher.load_checkpoint()
    return teacher


def test_teacher_runs_in_inference_mode(teacher_ckpt):
    teacher = _teacher(teacher_ckpt)
    x = views(batch=2)[0]
    out = teacher(x)
    assert out.is_inference() and not out.requires_grad
    torch.testing.assert_close(out, teacher.backbone(x)[-1], rtol=0, atol=0)
    # Regions matched on it outside inference mode are ordinary tensors,
    # usable in an autograd gather.
    index = match_regions(out, out, 'different')
    assert not index.is_inference()
    local = torch.randn(2, 8, *out.shape[-2:], requires_grad=True)
    matched_cosine(local, local, index).sum().backward()
    assert local.grad is not None


def test_teacher_default_follows_ambient_autocast(teacher_ckpt):
    teacher = _teacher(teacher_ckpt)
    x = views(batch=2)[0]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert teacher(x).dtype == torch.bfloat16  # as before: no override


def test_teacher_float32_ignores_online_autocast(teacher_ckpt):
    teacher = _teacher(teacher_ckpt, dtype='float32')
    x = views(batch=2)[0]
    reference = teacher(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = teacher(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=0, atol=0)


def test_teacher_bf16_and_channels_last(teacher_ckpt):
    reference = _teacher(teacher_ckpt)
    fast = _teacher(teacher_ckpt, dtype=torch.bfloat16, channels_last=True)
    assert fast.dtype == torch.bfloat16 and fast.channels_last
    # Weights stay float32 (checkpoints, fingerprints unchanged).
    assert all(p.dtype == torch.float32 for p in fast.parameters())
    assert fast.backbone.conv1.weight.is_contiguous(
        memory_format=torch.channels_last)
    assert fast.loaded_fingerprint == reference.loaded_fingerprint
    assert weights_fingerprint(fast.backbone) == fast.loaded_fingerprint
    x = views(batch=2)[0]
    out, ref = fast(x), reference(x)
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    cos = torch.nn.functional.cosine_similarity(
        out.float().flatten(1), ref.flatten(1))
    assert (cos > 0.98).all()
    cl = _teacher(teacher_ckpt, channels_last=True)
    torch.testing.assert_close(cl(x), ref, rtol=1e-4, atol=1e-4)
    fast.train()
    assert not fast.training and not any(p.requires_grad
                                         for p in fast.parameters())


def test_teacher_bad_dtype(teacher_ckpt):
    with pytest.raises(ValueError, match='teacher dtype'):
        FrozenTeacher(teacher_ckpt, backbone=TEACHER_BACKBONE, dtype='int8')
    assert FrozenTeacher(
        teacher_ckpt, backbone=TEACHER_BACKBONE,
        dtype='torch.float16').dtype == torch.float16


def test_weights_fingerprint_of_bf16_weights():
    module = torch.nn.Linear(3, 2).to(torch.bfloat16)
    assert len(weights_fingerprint(module)) == 12


@pytest.mark.parametrize('opts', [{}, dict(dtype='bfloat16',
                                           channels_last=True)])
def test_ediy_trains_with_teacher_options(teacher_ckpt, opts):
    model = build_ediy(
        teacher=dict(
            source='checkpoint',
            checkpoint=teacher_ckpt,
            backbone=TEACHER_BACKBONE,
            **opts))
    model.init_weights()
    model.train()
    losses = model.loss(views(), None)
    assert set(losses) == {'loss_byol', 'loss_rdem', 'loss_riem'}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize('hw', [((3, 5), (3, 5)), ((7, 7), (1, 4))])
def test_teacher_matches_equal_match_regions(hw):
    t1, t2 = torch.randn(3, 16, *hw[0]), torch.randn(3, 16, *hw[1])
    matches = teacher_matches(t1, t2)
    expected = dict(
        rdem_1=match_regions(t1, t1, 'different'),
        rdem_2=match_regions(t2, t2, 'different'),
        riem_1=match_regions(t1, t2, 'similar'),
        riem_2=match_regions(t2, t1, 'similar'))
    for key, value in expected.items():
        assert torch.equal(matches[key], value), key
    only = teacher_matches(t1, t2, different=False)
    assert only['rdem_1'] is None and torch.equal(only['riem_1'],
                                                  expected['riem_1'])


def test_matched_cosine_same_map_normalised_once():
    x = torch.randn(2, 6, 3, 4, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    index = torch.randint(12, (2, 12))
    a, b = matched_cosine(x, x, index), matched_cosine(y, y, index)
    assert torch.equal(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(x.grad, y.grad)


def _cl(x):
    """A map stored channels-last, as the local projector returns it."""
    return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


@pytest.mark.parametrize('head_cfg', [
    {},
    dict(rdem_negative='instance'),
    dict(lambda_rdem=0.),
    dict(lambda_riem=0., lambda_rdem=0.5),
])
def test_region_losses_equal_functional_losses(head_cfg):
    torch.manual_seed(0)
    head = MODELS.build(dict(type='EDIYHead', predictor=PRED, **head_cfg))
    b, d = 4, 32
    online = tuple(
        _cl(torch.randn(b, d, 3, 3)).requires_grad_() for _ in range(2))
    target = tuple(_cl(torch.randn(b, d, 3, 3)) for _ in range(2))
    guide = tuple(torch.randn(b, 64, 3, 3) for _ in range(2))
    glob = tuple(torch.randn(b, d) for _ in range(2))
    torch.manual_seed(1)
    losses = head.region_losses(glob, online, target, guide)
    torch.manual_seed(1)
    expected = {}
    if head.lambda_rdem > 0:
        if head.rdem_negative == 'instance':
            partner = random_partners(b)
            rdem = rdem_instance_loss(*online, *glob, partner)
        else:
            rdem = rdem_loss(*online, *guide)
        expected['loss_rdem'] = head.lambda_rdem * rdem
    if head.lambda_riem > 0:
        expected['loss_riem'] = head.lambda_riem * riem_loss(
            *online, *target, *guide)
    assert list(losses) == list(expected)
    for key in expected:  # the same kernels: bit-identical values
        assert torch.equal(losses[key], expected[key]), key
    grads = torch.autograd.grad(sum(losses.values()), online)
    expected_grads = torch.autograd.grad(sum(expected.values()), online)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad)


def test_benchmark_step_tool(tmp_path):
    tool = load_tool('tools/analysis_tools/benchmark_step.py')
    out = tmp_path / 'bench.json'
    report = tool.main([
        '--depth', '18', '--size', '64', '--batch', '2', '--hid-channels',
        '64', '--out-channels', '32', '--iters', '1', '--warmup', '0',
        '--device', 'cpu', '--threads', '1', '--out',
        str(out)
    ])
    saved = json.loads(out.read_text())
    results = saved['results']
    assert list(results) == ['byol', 'ediy', 'ediy-tf']
    for name, r in results.items():
        assert r['time_ms']['median'] > 0 and r['memory']['peak_mib'] > 0
        assert r['flops']['step'] > 0
        assert ('region_ms' in r) == (name != 'byol')
    flops = {name: r['flops'] for name, r in results.items()}
    # The external R-18 teacher costs one forward of the same backbone.
    assert flops['ediy']['teacher_fwd'] == pytest.approx(
        flops['byol']['target_fwd'], rel=0.05)
    assert flops['ediy']['step'] > flops['ediy-tf']['step'] > flops[
        'byol']['step']
    assert 'time x' in report['table']
    assert results['byol']['time_ratio']['median'] == 1
