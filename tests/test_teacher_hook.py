"""TeacherHook fails fast, before the first iteration."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger

from ediy_mm.engine import TeacherHook
from ediy_mm.models import TeacherCheckpointError
from helpers import BACKBONE, build_ediy


def fake_runner(model, num_views=2, size=64):
    sample = dict(inputs=[torch.rand(3, size, size)] * num_views)
    return SimpleNamespace(
        model=model,
        train_dataloader=SimpleNamespace(dataset=[sample]),
        logger=MMLogger.get_current_instance())


def ediy_with(path, **teacher):
    return build_ediy(
        region_source='teacher',
        teacher=dict(
            checkpoint=path,
            backbone=dict(BACKBONE, out_indices=(3, ), **teacher)))


def test_passes_and_keeps_teacher_frozen(teacher_ckpt):
    model = ediy_with(teacher_ckpt)
    model.init_weights()
    hook = TeacherHook(probe_size=64)
    hook.before_train(fake_runner(model))
    model.train()
    hook.before_train_epoch(fake_runner(model))
    model.teacher.backbone.train()  # something un-freezes it
    with pytest.raises(RuntimeError, match='frozen'):
        hook.before_train_epoch(fake_runner(model))


def test_random_init_teacher_is_refused(teacher_ckpt):
    model = ediy_with(teacher_ckpt)  # init_weights() never called
    with pytest.raises(TeacherCheckpointError, match='random init'):
        TeacherHook().before_train(fake_runner(model))


def test_overwritten_teacher_is_refused(teacher_ckpt):
    model = ediy_with(teacher_ckpt)
    model.init_weights()
    with torch.no_grad():
        model.teacher.backbone.conv1.weight.add_(1)
    with pytest.raises(TeacherCheckpointError, match='changed after'):
        TeacherHook().before_train(fake_runner(model))


def test_map_size_mismatch(teacher_ckpt):
    model = ediy_with(teacher_ckpt, strides=(1, 2, 2, 1))
    model.init_weights()
    with pytest.raises(ValueError, match=r'\(4, 4\) grid .* \(2, 2\) grid'):
        TeacherHook(probe_size=64).before_train(fake_runner(model))


def test_one_view_batch(teacher_ckpt):
    model = ediy_with(teacher_ckpt)
    model.init_weights()
    with pytest.raises(ValueError, match='got 1 view'):
        TeacherHook(probe_size=64).before_train(
            fake_runner(model, num_views=1))
