# MosRep (ICLR 2023) as its authors released it (MosRep.pytorch,
# pretrain_mosrep.sh): MoCo v2 on ResNet-50 (zero-initialised residuals)
# with a 1x1-conv projector, 2 x 224 px views (scale 0.2-1) + 4 x 112 px
# local crops (scale 0.1-0.6) composed into a 2x2 mosaic per image,
# jittered by up to 48 px (Beta(0.5, 0.5)), RoIAlign 7x7; queue 65536,
# tau 0.2, m 0.999; 8 GPUs x 64 = 512, SGD lr 0.06, wd 1e-4, cosine per
# epoch, ImageNet-1K. Everything else is mmpretrain's MoCo v2 config.
# The script passes `-b 64 --lr 0.03` under the comment "8 GPUs * 64 =
# 256", but `-b` is per process and pretrain_ddp.py scales the rate by
# world_size * b / 256: the released run trains at 512 with lr 0.06.
# The released run also trains in fp16 autocast: add --amp.
_base_ = 'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py'

custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)

model = dict(
    type='MosRep',
    backbone=dict(zero_init_residual=True),
    neck=dict(
        _delete_=True,
        type='MosRepNeck',
        in_channels=2048,
        hid_channels=2048,
        out_channels=128),
    head=None,
    temperature=0.2,
    mosaic=dict(jitter_prob=1.0, jitter_pixels=48, jitter_beta=0.5))

# Query and key views: mmpretrain's MoCo v2 view pipeline (224 px, scale
# 0.2-1). Local crops: 112 px of scale 0.1-0.6, then the same
# augmentations.
mocov2_augmentations = _base_.view_pipeline[1:]
global_pipeline = _base_.view_pipeline
local_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=112,
        crop_ratio_range=(0.1, 0.6),
        backend='pillow'), *mocov2_augmentations
]
# The data workers decode, crop and flip (DecodeMultiView); MoCo v2's
# colour jitter, grayscale and blur run batched on the training device
# (PhotometricDataPreprocessor), same distributions (README, "Data
# loading"). mmpretrain's stock CPU pipeline instead:
#   --cfg-options train_dataloader.dataset.pipeline.0.photometric=cpu
views = dict(num_views=[2, 4], transforms=[global_pipeline, local_pipeline])
data_preprocessor = dict(type='PhotometricDataPreprocessor', **views)
# `collate_fn` is restated without the `_scope_` tag that mmengine puts on
# dicts inherited through `mmpretrain::` (the Runner would pass it on).
# Workers are seeded from the run's seed and the epoch, so that --resume
# repeats the augmentations exactly.
train_dataloader = dict(
    batch_size=64,
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init_fn'),
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline=[
        dict(type='DecodeMultiView', **views),
        dict(type='PackInputs', meta_keys=['photometric'])
    ]))

optim_wrapper = dict(optimizer=dict(lr=0.06))
auto_scale_lr = dict(base_batch_size=512)

# Stop on a non-finite loss; checkpoints safe against a kill and resumable
# exactly (the key encoder moves once per optimizer step by itself).
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
