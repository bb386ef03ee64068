# E-DIY on a CPU-sized ConvNeXt (one block per stage, 16-128 channels) at
# 128 px on real photos: the model of
# ./ediy_convnext-tiny_16xb256-amp-coslr-300e_in1k.py in miniature (the
# 4x4 last stage for the regions, pooled for the global branch), with the
# data, schedule, teacher and optimiser of
# ./ediy_vit-mini-p16_cpu-128px_photos.py; the ResNet-18 teacher has the
# same 4x4 grid.
# Teacher-free: --cfg-options model.region_source=target model.teacher=None
_base_ = './ediy_vit-mini-p16_cpu-128px_photos.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128]),
        out_indices=(3, ),
        gap_before_final_norm=False),
    neck=dict(in_channels=128, global_input='map'),
    region_grid=None)
