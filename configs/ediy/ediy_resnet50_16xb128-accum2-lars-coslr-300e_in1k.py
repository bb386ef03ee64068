# E-DIY, the paper's recipe (Sec. 4.2) on ImageNet-1K, 300 epochs.
# BYOL's architecture, augmentations and LARS optimiser (inherited from
# mmpretrain's BYOL config), 16 GPUs x 128 images with gradient
# accumulation x2 = BYOL's batch of 4096, lr 3.2, weight decay 1.5e-6 (bias
# and BN excluded from decay and LARS adaptation), 10 warm-up epochs then
# cosine, tau_base 0.996. The teacher is a frozen BYOL ResNet-50.
_base_ = [
    'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py',
    '../_base_/ediy.py'
]

custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)

# mmengine tags every dict inherited through `mmpretrain::` with `_scope_`,
# which the Runner then passes to the collate function as a keyword: restate
# it here without the tag.
# Workers restart each epoch with seeds drawn from the run's seed and the
# epoch, so augmentations differ per epoch and a resumed run repeats them
# exactly (see ediy_mm.datasets.epoch_seeded_worker_init_fn).
# The data workers decode, crop and flip (DecodeMultiView); BYOL's colour
# jitter, grayscale, blur and solarisation run batched on the training
# device (PhotometricDataPreprocessor), same distributions (README, "Data
# loading"). mmpretrain's stock CPU pipeline instead:
#   --cfg-options train_dataloader.dataset.pipeline.0.photometric=cpu
views = dict(
    num_views=[1, 1],
    transforms=[_base_.view_pipeline1, _base_.view_pipeline2])
data_preprocessor = dict(type='PhotometricDataPreprocessor', **views)
train_dataloader = dict(
    batch_size=128,
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init_fn'),
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline=[
        dict(type='DecodeMultiView', **views),
        dict(type='PackInputs', meta_keys=['photometric'])
    ]))

model = dict(
    type='EDIY',
    base_momentum=0.004,  # 1 - tau_base, tau_base = 0.996
    neck=dict(_base_.ediy_neck, _delete_=True, in_channels=2048),
    head=dict(_base_.ediy_head, _delete_=True),
    # Who chooses the regions of eq. 4 and eq. 6: 'teacher' (the paper),
    # 'target' (teacher-free, ours) or 'random' (Table 1, "R").
    region_source='teacher',
    # The one option to set: a BYOL ResNet-50 checkpoint, with
    # --cfg-options model.teacher.checkpoint=PATH (mmpretrain format; for a
    # torchvision state dict also set model.teacher.prefix='').
    teacher=dict(
        checkpoint='checkpoints/byol_resnet50_in1k.pth',
        backbone=dict(type='ResNet', depth=50, out_indices=(3, )),
        prefix='backbone.',
        # Faster convolutions for the inference-only teacher (docs/
        # benchmarks.md); its weights and checkpoints stay float32 NCHW.
        channels_last=True))

# 16 GPUs x 128 x 2 accumulation steps = 4096 images per update.
optim_wrapper = dict(
    optimizer=dict(lr=3.2, weight_decay=1.5e-6), accumulative_counts=2)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    # decayed at every step, as BYOL (mmpretrain's base steps per epoch)
    dict(
        type='CosineAnnealingLR',
        T_max=290,
        by_epoch=True,
        begin=10,
        end=300,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=300)

# Fail fast on a bad teacher or a non-finite loss; resume exactly (the
# target moves once per optimizer step by itself).
custom_hooks = [
    dict(type='TF32Hook'),
    dict(type='TeacherHook'),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook')
]

# Fixed-size inputs: cuDNN times its convolution algorithms once and keeps
# the fastest (mmpretrain's runtime turns this off); TF32Hook runs float32
# matmuls in TF32, as PyTorch already runs convolutions (README, "GPU speed
# switches").
env_cfg = dict(cudnn_benchmark=True)
# mmengine's CheckpointHook, safe against a kill while saving.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

# tools/train.py --auto-scale-lr counts GPUs x batch x accumulative_counts.
auto_scale_lr = dict(base_batch_size=4096)
