# MosRep, small-image recipe: ./mosrep_resnet18_cpu-64px_photos.py with
# ResNet-18's CIFAR stem (../_base_/small-image_64px.py: output stride 16,
# so the mosaic RoIAlign samples 1/16), no Gaussian blur, batch 64, queue
# 4096 and solo-learn's CIFAR MoCo v2+ optimiser (SGD lr 0.3 per 256
# images, weight decay 1e-4; scripts/pretrain/cifar/mocov2plus.yaml).
_base_ = [
    './mosrep_resnet18_cpu-64px_photos.py', '../_base_/small-image_64px.py'
]

batch_size = 64
model = dict(
    queue_len=4096,
    backbone=_base_.small_backbone,
    mosaic=dict(spatial_scale=1 / 16))
small_mocov2_augmentations = [
    t for t in _base_.mocov2_augmentations if t.type != 'GaussianBlur'
]
data_preprocessor = dict(_base_.small_data_preprocessor, _delete_=True)
train_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(
            type='MultiView',
            num_views=[2, 4],
            transforms=[[
                _base_.global_pipeline[0], *small_mocov2_augmentations
            ], [_base_.local_pipeline[0], *small_mocov2_augmentations]]),
        dict(type='PackInputs')
    ]))
optim_wrapper = dict(
    optimizer=dict(lr=0.3 * batch_size / 256, weight_decay=1e-4))
auto_scale_lr = dict(base_batch_size=batch_size)
