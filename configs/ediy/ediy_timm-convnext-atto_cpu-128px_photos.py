# E-DIY on a timm model through mmpretrain's TIMMBackbone. timm is an
# optional extra: pip install timm (or pip install -e ".[timm]"); it brings
# no transformers. Here timm's ConvNeXt-atto (3.4 M parameters) at 128 px
# on real photos, with the data, schedule and ResNet-18 teacher of
# ./ediy_resnet18_cpu-128px_photos.py. features_only=True makes timm return
# stage maps; out_indices=(3, ) keeps the last one (stride 32, 320
# channels, 4x4 at 128 px: the teacher's grid). Any timm model with
# features_only works the same way: set model_name, out_indices and
# neck.in_channels (timm's feature_info.channels()); a model of another
# stride than the teacher's needs model.region_grid (README, "Backbones").
# Teacher-free: --cfg-options model.region_source=target model.teacher=None
_base_ = './ediy_resnet18_cpu-128px_photos.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='convnext_atto',
        features_only=True,
        out_indices=(3, )),
    neck=dict(in_channels=320, hid_channels=256, out_channels=64),
    head=dict(
        predictor=dict(in_channels=64, hid_channels=256, out_channels=64)))

# MoCo v3's rule: lr = 2.4e-3 x batch / 4096, weight decay 0.1.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2.4e-3 * 16 / 4096, weight_decay=0.1))

custom_hooks = [
    dict(type='TeacherHook'),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook')
]
