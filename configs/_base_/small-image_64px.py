# The small-image recipe (64 px views, e.g. Tiny ImageNet) shared by the
# `*_resnet18-cifarstem_tinyin-64px.py` configs; not a config to train.
# Each variable is one departure from the ImageNet recipe, measured in
# docs/study.md ("The small-image recipe"):
# - small_backbone: mmpretrain's ResNet_CIFAR (3x3 stride-1 stem, no
#   max-pool) with a stride-2 first stage: output stride 16, so 64 px views
#   end in 4 x 4 regions (the ImageNet stem gives 2 x 2: "the most different
#   of 4" is not E-DIY's R-DEM), at about 2.5x the ImageNet stem's step time
#   on a CPU (the plain CIFAR stem, 8 x 8 regions, is about 9x).
# - small_photometric_{1,2}: BYOL's asymmetric views without Gaussian blur
#   (sigma up to 2 px erases a 64 px view) and solarisation p 0.2 on the
#   second view only (solo-learn's scripts/pretrain/cifar/augmentations/
#   asymmetric.yaml; lightly's CIFAR benchmarks also turn blur off).
# - small_lars: LARS with solo-learn's CIFAR BYOL numbers (byol.yaml): lr
#   1.0 per 256 images, trust coefficient eta 0.02 (mmpretrain's default is
#   0.001: 20x smaller steps) and weight decay 1e-5. mmpretrain's LARS has
#   no trust-ratio clipping, so each weight tensor moves by lr x eta of its
#   norm per step.
small_image_size = 64
small_backbone = dict(type='ResNet_CIFAR', strides=(2, 2, 2, 2))
_jitter = dict(
    type='RandomApply',
    transforms=[
        dict(
            type='ColorJitter',
            brightness=0.4,
            contrast=0.4,
            saturation=0.2,
            hue=0.1)
    ],
    prob=0.8)
_grayscale = dict(
    type='RandomGrayscale',
    prob=0.2,
    keep_channels=True,
    channel_weights=(0.114, 0.587, 0.2989))
small_photometric_1 = [dict(type='RandomFlip', prob=0.5), _jitter, _grayscale]
small_photometric_2 = [
    *small_photometric_1,
    dict(type='Solarize', thr=128, prob=0.2)
]
_crop = dict(
    type='RandomResizedCrop',
    scale=small_image_size,
    interpolation='bicubic',
    backend='pillow')
small_view_pipelines = [[_crop, *small_photometric_1],
                        [_crop, *small_photometric_2]]
small_lars = dict(type='LARS', lr=1.0, eta=0.02, weight_decay=1e-5)
# mmpretrain's stock path: the data workers run the whole view pipelines
# (LoadImageFromFile + MultiView), whatever the base config
# leaves to the training device; restate it with _delete_=True.
small_data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
small_base_batch = 256
# The two-view training pipeline and optimiser of BYOL and E-DIY at batch
# 64 (the lr scaled linearly from small_base_batch).
small_batch = 64
small_two_view_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1], transforms=small_view_pipelines),
    dict(type='PackInputs')
]
small_lars_at_batch = dict(
    small_lars, lr=small_lars['lr'] * small_batch / small_base_batch)
