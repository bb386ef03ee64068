"""The E-DIY algorithm, neck, head and teacher on small inputs."""
import copy

import pytest
import torch
from mmpretrain.registry import MODELS
from torchvision.models import resnet18

from ediy_mm.models import TeacherCheckpointError
from helpers import BACKBONE, PRED, build_ediy, views


def with_teacher(path, **head):
    model = build_ediy(
        region_source='teacher',
        teacher=dict(
            checkpoint=path, backbone=dict(BACKBONE, out_indices=(3, ))),
        **head)
    model.init_weights()
    return model


def test_teacher_loaded_frozen_and_in_eval(teacher_ckpt):
    model = with_teacher(teacher_ckpt)
    saved = torch.load(teacher_ckpt)['state_dict']
    for k, v in model.teacher.backbone.state_dict().items():
        assert torch.equal(v, saved[f'backbone.{k}']), k
    model.train()
    assert not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    before = copy.deepcopy(model.teacher.state_dict())
    for seed in range(3):
        model.loss(views(seed=seed), None)
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize('term', ['loss_byol', 'loss_rdem', 'loss_riem'])
def test_gradients_of_each_term(teacher_ckpt, term):
    model = with_teacher(teacher_ckpt)
    model.train()
    losses = model.loss(views(), None)
    assert set(losses) == {'loss_byol', 'loss_rdem', 'loss_riem'}
    losses[term].backward()

    def has_grad(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in module.parameters())

    assert has_grad(model.backbone)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is None for p in model.target_net.parameters())
    neck = model.neck
    if term == 'loss_byol':
        assert has_grad(neck.global_projector) and has_grad(model.head)
        assert not has_grad(neck.local_projector)
    else:
        assert has_grad(neck.local_projector)
        assert not has_grad(neck.global_projector)
        assert not has_grad(model.head)


def test_equals_mmpretrain_byol_without_region_losses():
    torch.manual_seed(0)
    ours = build_ediy(lambda_rdem=0., lambda_riem=0.)
    byol = MODELS.build(
        dict(
            type='BYOL',
            backbone=BACKBONE,
            neck=dict(
                type='NonLinearNeck',
                in_channels=512,
                hid_channels=64,
                out_channels=32,
                num_layers=2,
                with_bias=True,
                with_last_bn=False,
                with_avg_pool=True,
                norm_cfg=dict(type='BN1d')),
            head=dict(
                type='LatentPredictHead',
                predictor=PRED,
                loss=dict(type='CosineSimilarityLoss'))))
    byol.backbone.load_state_dict(ours.backbone.state_dict())
    byol.neck.load_state_dict(ours.neck.global_projector.state_dict())
    byol.head.predictor.load_state_dict(ours.head.predictor.state_dict())
    inputs = views()
    ours_loss = ours.loss(inputs, None)
    byol_loss = byol.loss(inputs, None)['loss']
    assert set(ours_loss) == {'loss_byol'}
    # mmpretrain's BYOL returns 2 x (-cos - cos); eq. 2 is 4 - 2cos - 2cos.
    torch.testing.assert_close(byol_loss + 4, ours_loss['loss_byol'])
    ours_loss['loss_byol'].backward()
    byol_loss.backward()
    pairs = [(ours.backbone, byol.backbone),
             (ours.neck.global_projector, byol.neck),
             (ours.head.predictor, byol.head.predictor)]
    for a, b in pairs:
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(
                p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_zero_weights_do_not_build_modules(teacher_ckpt):
    model = build_ediy(
        region_source='teacher',
        teacher=dict(checkpoint=teacher_ckpt),
        lambda_rdem=0.,
        lambda_riem=0.)
    assert model.teacher is None  # not needed, not built
    assert model.neck.local_projector is None
    assert set(model.loss(views(), None)) == {'loss_byol'}

    model = build_ediy(lambda_byol=0.)
    assert model.neck.global_projector is None and model.head.predictor is None

    calls = []
    model = build_ediy(lambda_riem=0.)
    model.target_net.module[1].local_projector.register_forward_hook(
        lambda *_: calls.append(1))
    assert set(model.loss(views(), None)) == {'loss_byol', 'loss_rdem'}
    assert not calls  # R-DEM needs no target local map


#: Every ablation switch of Table 1 and the variants (head options, region
#: source) with the loss terms it returns.
ABLATIONS = {
    'byol': (dict(lambda_rdem=0., lambda_riem=0.), 'target', {'loss_byol'}),
    'rdem': (dict(lambda_riem=0., lambda_byol=0.), 'target', {'loss_rdem'}),
    'riem': (dict(lambda_rdem=0., lambda_byol=0.), 'target', {'loss_riem'}),
    'rdem-riem': (dict(lambda_byol=0.), 'target', {'loss_rdem', 'loss_riem'}),
    'random': ({}, 'random', {'loss_byol', 'loss_rdem', 'loss_riem'}),
    'rins-riem': (dict(rdem_negative='instance'), 'target',
                  {'loss_byol', 'loss_rdem', 'loss_riem'}),
    'rins-random': (dict(rdem_negative='instance'), 'random',
                    {'loss_byol', 'loss_rdem', 'loss_riem'}),
    'rins-only': (dict(rdem_negative='instance',
                       lambda_riem=0.), 'random', {'loss_byol', 'loss_rdem'}),
    'local-predictor': (dict(local_predictor=PRED), 'target',
                        {'loss_byol', 'loss_rdem', 'loss_riem'}),
    'teacher-free': ({}, 'target', {'loss_byol', 'loss_rdem', 'loss_riem'}),
}


@pytest.mark.parametrize('name', list(ABLATIONS))
def test_every_parameter_gets_a_gradient(name):
    """What DDP needs without find_unused_parameters: each built trainable
    parameter receives a gradient from the returned loss terms."""
    head, region_source, terms = ABLATIONS[name]
    model = build_ediy(region_source=region_source, **head)
    model.train()
    losses = model.loss(views(), None)
    assert set(losses) == terms
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    unused = [
        n for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not unused


def test_rins_negatives_carry_no_gradient_into_the_global_branch():
    model = build_ediy(rdem_negative='instance', lambda_riem=0.)
    model.train()
    losses = model.loss(views(), None)
    losses['loss_rdem'].backward()
    touched = [
        n for n, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    ]
    assert touched
    assert not [n for n in touched if 'global_projector' in n]
    assert not [n for n in touched if n.startswith('head.predictor')]
    assert any('local_projector' in n for n in touched)


def test_rins_needs_byol():
    with pytest.raises(ValueError, match='lambda_byol > 0'):
        build_ediy(rdem_negative='instance', lambda_byol=0.)


def test_head_calls_the_equation_functions(monkeypatch):
    """The head trains with exactly the functions of ediy_losses (those the
    naive-loop tests of test_losses.py check)."""
    from ediy_mm.models.heads import ediy_head
    from ediy_mm.models.losses import ediy_losses
    called = []
    for name in ('byol_loss', 'match_regions', 'rdem_loss', 'riem_loss',
                 'rdem_instance_loss'):
        assert getattr(ediy_head, name) is getattr(ediy_losses, name)

        def spy(*args, _name=name, _fn=getattr(ediy_losses, name)):
            called.append(_name)
            return _fn(*args)

        monkeypatch.setattr(ediy_head, name, spy)
    build_ediy().loss(views(), None)
    assert sorted(set(called)) == [
        'byol_loss', 'match_regions', 'rdem_loss', 'riem_loss'
    ]
    called.clear()
    build_ediy(rdem_negative='instance').loss(views(), None)
    assert 'rdem_instance_loss' in called and 'rdem_loss' not in called


def test_weights_multiply_terms():
    torch.manual_seed(0)
    ref = build_ediy()
    scaled = build_ediy(lambda_rdem=0.5, lambda_riem=0.25, lambda_byol=2.)
    scaled.load_state_dict(ref.state_dict())
    a, b = ref.loss(views(), None), scaled.loss(views(), None)
    for key, w in (('loss_rdem', .5), ('loss_riem', .25), ('loss_byol', 2.)):
        torch.testing.assert_close(b[key], w * a[key])


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="region_source='teacher'"):
        build_ediy(region_source='teacher', teacher=None)
    with pytest.raises(ValueError, match='region_source must be one of'):
        build_ediy(region_source='moon')
    with pytest.raises(ValueError, match='replaced by model.region_source'):
        build_ediy(teacher=dict(source='target'))
    with pytest.raises(ValueError, match='all loss weights are 0'):
        build_ediy(lambda_rdem=0., lambda_riem=0., lambda_byol=0.)
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build_ediy(region_source='teacher', teacher=dict(checkpoint=missing))


def test_wrong_number_of_views():
    model = build_ediy()
    with pytest.raises(
            ValueError,
            match='exactly 2 augmented views per image, got 1 view'):
        model.loss(views()[:1], None)
    with pytest.raises(ValueError, match='got 3'):
        model.loss(views() + views()[:1], None)


def test_teacher_of_wrong_architecture(tmp_path, teacher_ckpt):
    model = build_ediy(
        region_source='teacher',
        teacher=dict(
            checkpoint=teacher_ckpt,
            backbone=dict(type='ResNet', depth=50, out_indices=(3, ))))
    with pytest.raises(TeacherCheckpointError, match='byol_r18.pth'):
        model.init_weights()


def test_torchvision_teacher(tmp_path):
    path = str(tmp_path / 'tv_r18.pth')
    tv = resnet18()
    torch.save(tv.state_dict(), path)
    with pytest.raises(TeacherCheckpointError, match="prefix 'backbone.'"):
        with_teacher(path)  # torchvision keys carry no prefix
    model = build_ediy(
        region_source='teacher',
        teacher=dict(
            checkpoint=path,
            prefix='',
            backbone=dict(BACKBONE, out_indices=(3, ))))
    model.init_weights()
    torch.testing.assert_close(model.teacher.backbone.layer4[1].conv2.weight,
                               tv.layer4[1].conv2.weight)


def test_neck_local_projector_is_per_region_1x1():
    model = build_ediy()
    neck = model.neck.eval()
    x = torch.randn(2, 512, 3, 5)
    glob, local = neck((x, ))
    assert glob.shape == (2, 32) and local.shape == (2, 32, 3, 5)
    # region (1, 4) of image 1 depends on that cell only
    single = neck.local_projector((x[1, :, 1, 4][None], ))[0][0]
    torch.testing.assert_close(local[1, :, 1, 4], single)
