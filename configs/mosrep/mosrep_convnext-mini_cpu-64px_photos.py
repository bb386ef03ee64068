# MosRep on a CPU-sized ConvNeXt (one block per stage, 16-128 channels):
# the model of ./mosrep_convnext-tiny_8xb64-amp-coslr-200e_in1k.py in
# miniature (cells pooled from the unpooled last stage at 1/32: a 2x2 map
# per 64 px mosaic), the AdamW, data and schedule of
# ./mosrep_vit-mini-p16_cpu-64px_photos.py. Used by the tests.
_base_ = './mosrep_vit-mini-p16_cpu-64px_photos.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128]),
        out_indices=(3, ),
        gap_before_final_norm=False),
    neck=dict(in_channels=128),
    mosaic=dict(spatial_scale=1 / 32))
