# E-DIY on a timm model through mmpretrain's TIMMBackbone. timm is an
# optional extra: pip install timm (or pip install -e ".[timm]"); it brings
# no transformers. Here timm's ConvNeXt-atto (3.4 M parameters) at 128 px
# on real photos, with the data, schedule, teacher and optimiser of
# ./ediy_convnext-mini_cpu-128px_photos.py. features_only=True makes timm
# return stage maps; out_indices=(3, ) keeps the last one (stride 32, 320
# channels, 4x4 at 128 px: the ResNet-18 teacher's grid). Any timm model
# with features_only works the same way: set model_name, out_indices and
# neck.in_channels (timm's feature_info.channels()); a model of another
# stride than the teacher's needs model.region_grid (README, "Backbones").
# Teacher-free: --cfg-options model.region_source=target model.teacher=None
_base_ = './ediy_convnext-mini_cpu-128px_photos.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='convnext_atto',
        features_only=True,
        out_indices=(3, )),
    neck=dict(in_channels=320))
