# E-DIY + mosaic (ours), CPU-sized: the CPU E-DIY of
# ../ediy/ediy_resnet18_cpu-128px_photos.py (ResNet-18, 128 px, frozen
# CPU BYOL teacher: set model.teacher.checkpoint) plus 4 local crops of
# 64 px per image in 2x2 mosaics (jitter up to 27 px = 48/112 of a crop).
# `tools/demo.py --method ediy-mosaic` trains it after the teacher.
_base_ = '../ediy/ediy_resnet18_cpu-128px_photos.py'

model = dict(type='EDIYMosaic', mosaic=dict(jitter_pixels=27))

local_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.1, 0.6),
        interpolation='bicubic',
        backend='pillow'), *_base_.view_pipeline[1:]
]
# Decode, crop and flip in the data workers, the other augmentations on the
# training device (as the base config; stock CPU pipeline:
# --cfg-options train_dataloader.dataset.pipeline.0.photometric=cpu).
views = dict(
    num_views=[2, 4], transforms=[_base_.view_pipeline, local_pipeline])
data_preprocessor = dict(**views)
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='DecodeMultiView', **views),
        dict(type='PackInputs', meta_keys=['photometric'])
    ]))

# TeacherHook checks the teacher and the views (EDIYMosaic.check_views: two
# global views, then the local crops) before the first iteration.
custom_hooks = [
    dict(type='TeacherHook', probe_size=128),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook')
]
