# UniVIP (Li et al., CVPR 2022) on ImageNet-1K, 200 epochs: mmpretrain's
# BYOL recipe (ResNet-50, 16 GPUs x 256 = 4096 images, LARS lr 4.8, 10
# warm-up epochs + cosine, tau_base 0.99) with UniVIP's views and losses.
# Compute the proposals first (once, offline):
#   python tools/dataset_converters/univip_proposals.py data/imagenet/train \
#       --out data/imagenet/univip_proposals_train.json --workers 16
_base_ = 'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py'

custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)

num_instances = 4  # K
# BYOL's two view pipelines (mmpretrain's) without their RandomResizedCrop:
# UniVIPViews cuts the scenes (224 px) and the instances (96 px) itself.
photometric_1 = _base_.view_pipeline1[1:]
photometric_2 = _base_.view_pipeline2[1:]
univip_views = dict(
    type='UniVIPViews',
    view_pipelines=[photometric_1, photometric_2],
    num_instances=num_instances,
    scene_size=224,
    instance_size=96,
    max_tries=20,
    min_size=64,
    max_aspect=3.,
    max_iou=0.5,
    photometric='device')
train_pipeline = [
    dict(type='LoadImageFromFile'), univip_views,
    dict(
        type='PackInputs',
        algorithm_keys=['univip_scenes', 'univip_boxes', 'univip_source'],
        meta_keys=['photometric'])
]
# The data workers cut and flip the views; BYOL's colour jitter, grayscale,
# blur and solarisation run batched on the training device
# (PhotometricDataPreprocessor: the scenes, then the instances of view 1
# and of view 2), same distributions (README, "Data loading").
# mmpretrain's transforms on the CPU instead:
#   --cfg-options train_dataloader.dataset.pipeline.1.photometric=cpu
data_preprocessor = dict(
    type='PhotometricDataPreprocessor',
    num_views=[1, 1, num_instances, num_instances],
    transforms=[photometric_1, photometric_2] * 2)
# `collate_fn` is restated without the `_scope_` tag that mmengine puts on
# dicts inherited through `mmpretrain::`; workers are seeded per epoch so
# that --resume draws the same views.
train_dataloader = dict(
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init_fn'),
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='UniVIPDataset',
        data_root='data/imagenet/train',
        proposal_file='data/imagenet/univip_proposals_train.json',
        pipeline=train_pipeline))

model = dict(
    type='UniVIP',
    base_momentum=0.01,
    head=dict(
        _delete_=True,
        type='UniVIPHead',
        predictor=_base_.model.head.predictor,  # BYOL's
        num_instances=num_instances,
        embed_dim=256,
        loss_weights=dict(scene=1., scene_instance=1., instance=1.),
        sinkhorn_eps=0.1,
        sinkhorn_iters=50))

# mmpretrain's BYOL schedule with the cosine decayed at every step, as BYOL
# (the base steps it per epoch); the 300e and COCO configs inherit this.
param_scheduler = [
    _base_.param_scheduler[0],  # 10 warm-up epochs
    dict(_base_.param_scheduler[1], convert_to_iter_based=True)
]

# Fail fast on a non-finite loss; resume exactly (the momentum target moves
# once per optimizer step by itself).
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
