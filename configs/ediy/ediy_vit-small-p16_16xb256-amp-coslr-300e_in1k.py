# E-DIY on ViT-S/16 (ours; the paper trains ResNet-50 only). The recipe is
# MoCo v3's ViT-S/16 one, inherited from mmpretrain's config: its
# asymmetric views (crops from 8% of the image), AdamW with lr 2.4e-3 for
# 16 GPUs x 256 = 4096 images and weight decay 0.1, 40 warm-up epochs then
# a cosine decay at every step to epoch 300, fp16 AMP, target momentum
# 0.99 -> 1. The model is E-DIY's: BYOL-style global and local projectors
# and predictor (fc-BN-ReLU-fc, eq. 3 with lambda = 1). The global branch
# embeds the cls token, as MoCo v3 does (ClsAndMapMoCoV3ViT returns it
# beside the patch grid); every cell of the 14x14 patch grid at 224 px is a
# region.
#
# The teacher is the paper's frozen BYOL ResNet-50, whose last map is 7x7
# at 224 px: region_grid='interpolate' resizes it to the 14x14 patch grid
# (README, "Backbones": the reading and its measurement).
_base_ = [
    'mmpretrain::mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py',
    '../_base_/ediy.py'
]

custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)

# The collate function restated without the `_scope_` tag of dicts
# inherited through `mmpretrain::`; per-epoch worker seeds for exact resume
# (see ediy_mm.datasets.epoch_seeded_worker_init_fn).
# The data workers decode, crop and flip (DecodeMultiView); MoCo v3's colour
# jitter, grayscale, blur and solarisation run batched on the training
# device (PhotometricDataPreprocessor), same distributions (README, "Data
# loading"). mmpretrain's stock CPU pipeline instead:
#   --cfg-options train_dataloader.dataset.pipeline.0.photometric=cpu
views = dict(
    num_views=[1, 1],
    transforms=[_base_.view_pipeline1, _base_.view_pipeline2])
data_preprocessor = dict(type='PhotometricDataPreprocessor', **views)
train_dataloader = dict(
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init_fn'),
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline=[
        dict(type='DecodeMultiView', **views),
        dict(type='PackInputs', meta_keys=['photometric'])
    ]))

model = dict(
    type='EDIY',
    # MoCoV3ViT (mocov3-small, 224 px, patch 16, stop-gradient patch
    # projection) that also returns its cls token
    backbone=dict(type='ClsAndMapMoCoV3ViT'),
    neck=dict(
        _base_.ediy_neck,
        _delete_=True,
        in_channels=384,
        global_input='cls_token'),
    head=dict(_base_.ediy_head, _delete_=True),
    region_source='teacher',
    region_grid='interpolate',
    # a BYOL ResNet-50: --cfg-options model.teacher.checkpoint=PATH
    teacher=dict(
        checkpoint='checkpoints/byol_resnet50_in1k.pth',
        backbone=dict(type='ResNet', depth=50, out_indices=(3, )),
        prefix='backbone.',
        channels_last=True))

# Every parameter gets a gradient (MoCo v3's config asks DDP to search).
find_unused_parameters = False

# Fail fast on a bad teacher, a grid mismatch or a non-finite loss; resume
# exactly; save safely.
custom_hooks = [
    dict(type='TF32Hook'),
    dict(type='TeacherHook'),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook')
]
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

# Fixed-size inputs: cuDNN times its algorithms once and keeps the fastest
# (the patch projection and the teacher's convolutions); TF32Hook runs the
# float32 matmuls outside autocast in TF32 (README, "GPU speed switches").
env_cfg = dict(cudnn_benchmark=True)
