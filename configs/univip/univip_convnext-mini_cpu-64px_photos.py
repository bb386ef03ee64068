# UniVIP on a CPU-sized ConvNeXt (depths 1-1-1-1, 16-128 channels): the
# model of ./univip_vit-mini-p16_cpu-64px_photos.py with the backbone
# swapped, scene and instance embeddings from the pooled last stage
# (gap_before_final_norm). Compute the proposals first (see
# ./univip_resnet18_cpu-64px_photos.py). Used by the tests.
_base_ = './univip_vit-mini-p16_cpu-64px_photos.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128]),
        gap_before_final_norm=True),
    neck=dict(in_channels=128))
