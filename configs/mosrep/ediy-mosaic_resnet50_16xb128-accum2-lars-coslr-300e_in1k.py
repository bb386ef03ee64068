# E-DIY + mosaic (ours; in neither the E-DIY nor the MosRep paper): the
# E-DIY paper recipe (../ediy/ediy_resnet50_16xb128-accum2-lars-coslr-
# 300e_in1k.py: BYOL + R-DEM + R-IEM, frozen teacher, 4096 images per
# update) plus MosRep's mosaic: 4 local crops of 112 px (scale 0.1-0.6,
# the augmentations of BYOL's second view) per image, composed into 2x2
# mosaics (jitter up to 48 px); each cell is one more view of BYOL's loss
# (its prediction regresses the target projections of both views of its
# source image, weighted by sqrt(visible fraction)), lambda_mosaic = 1.
_base_ = '../ediy/ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py'

model = dict(
    type='EDIYMosaic',
    lambda_mosaic=1.0,
    mosaic=dict(jitter_prob=1.0, jitter_pixels=48, jitter_beta=0.5))

local_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=112,
        crop_ratio_range=(0.1, 0.6),
        interpolation='bicubic',
        backend='pillow'), *_base_.view_pipeline2[1:]
]
# Decode, crop and flip in the data workers, the other augmentations on the
# training device (as the base config; stock CPU pipeline:
# --cfg-options train_dataloader.dataset.pipeline.0.photometric=cpu).
views = dict(
    num_views=[1, 1, 4],
    transforms=[_base_.view_pipeline1, _base_.view_pipeline2, local_pipeline])
data_preprocessor = dict(**views)
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='DecodeMultiView', **views),
        dict(type='PackInputs', meta_keys=['photometric'])
    ]))

# The hooks and env_cfg are E-DIY's: TeacherHook checks the teacher and the
# views (EDIYMosaic.check_views: two global views, then the local crops)
# before the first iteration.
