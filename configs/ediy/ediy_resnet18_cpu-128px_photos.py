# E-DIY, CPU-sized: ResNet-18 at 128 px (4x4 = 16 regions) on real photos.
# Stage 2 of `make demo` and the fixture of the tests. The teacher is the
# CPU BYOL of ./byol_resnet18_cpu-128px_photos.py; set its checkpoint with
#   --cfg-options model.teacher.checkpoint=PATH
_base_ = './byol_resnet18_cpu-128px_photos.py'

model = dict(
    type='EDIY',
    base_momentum=0.004,
    neck=dict(
        _delete_=True,
        type='EDIYNeck',
        in_channels=512,
        hid_channels=1024,
        out_channels=128,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        _delete_=True,
        type='EDIYHead',
        predictor=dict(
            type='NonLinearNeck',
            in_channels=128,
            hid_channels=1024,
            out_channels=128,
            num_layers=2,
            with_bias=True,
            with_last_bn=False,
            with_avg_pool=False,
            norm_cfg=dict(type='BN1d'))),
    region_source='teacher',
    teacher=dict(
        checkpoint='work_dirs/byol_resnet18_cpu-128px_photos/epoch_2.pth',
        backbone=dict(
            type='ResNet',
            depth=18,
            out_indices=(3, ),
            norm_cfg=dict(type='BN')),
        prefix='backbone.'))

custom_hooks = [
    dict(type='TeacherHook', probe_size=128),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook')
]
