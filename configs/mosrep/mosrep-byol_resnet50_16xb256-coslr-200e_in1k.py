# MosRep's mosaic on BYOL (ours; in neither paper): mmpretrain's BYOL
# recipe (ResNet-50, 16 GPUs x 256, LARS lr 4.8, 200 epochs, tau_base 0.99)
# plus 4 local crops of 112 px (scale 0.1-0.6, the augmentations of BYOL's
# second view) per image, composed into 2x2 mosaics (jitter up to 48 px);
# each cell's prediction regresses the target projections of both views of
# its source image, weighted by sqrt(visible fraction).
_base_ = 'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py'

custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)

model = dict(
    type='MosRepBYOL',
    head=None,
    predictor=_base_.model.head.predictor,
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
# The data workers decode, crop and flip (DecodeMultiView); BYOL's colour
# jitter, grayscale, blur and solarisation run batched on the training
# device (PhotometricDataPreprocessor), same distributions (README, "Data
# loading"). mmpretrain's stock CPU pipeline instead:
#   --cfg-options train_dataloader.dataset.pipeline.0.photometric=cpu
views = dict(
    num_views=[1, 1, 4],
    transforms=[_base_.view_pipeline1, _base_.view_pipeline2, local_pipeline])
data_preprocessor = dict(type='PhotometricDataPreprocessor', **views)
# `collate_fn` is restated without the `_scope_` tag that mmengine puts on
# dicts inherited through `mmpretrain::`; workers seeded from the run's
# seed and the epoch (exact --resume).
train_dataloader = dict(
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init_fn'),
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline=[
        dict(type='DecodeMultiView', **views),
        dict(type='PackInputs', meta_keys=['photometric'])
    ]))

custom_hooks = [
    dict(type='TF32Hook'),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook')
]
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

# Fixed-size inputs: cuDNN times its convolution algorithms once and keeps
# the fastest (mmpretrain's runtime turns this off); TF32Hook runs float32
# matmuls in TF32, as PyTorch already runs convolutions (README, "GPU speed
# switches").
env_cfg = dict(cudnn_benchmark=True)
