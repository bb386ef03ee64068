# MosRep's mosaic on BYOL (ours), CPU-sized: the CPU BYOL of
# ../ediy/byol_resnet18_cpu-128px_photos.py (ResNet-18, 128 px views,
# batch 16, photos) plus 4 local crops of 64 px per image in 2x2 mosaics
# (jitter up to 27 px = 48/112 of a crop). `tools/demo.py --method
# mosrep-byol` trains it.
_base_ = '../ediy/byol_resnet18_cpu-128px_photos.py'

model = dict(
    type='MosRepBYOL',
    head=None,
    predictor=_base_.model.head.predictor,
    mosaic=dict(jitter_pixels=27))

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
