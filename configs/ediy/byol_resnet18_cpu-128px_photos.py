# BYOL, CPU-sized: ResNet-18 at 128 px on real photos (scikit-image's by
# default). Stage 1 of `make demo` (it trains E-DIY's teacher) and the
# fixture of the tests. Any folder of images can replace the photos:
#   --cfg-options train_dataloader.dataset.data_root=/path/to/images
_base_ = 'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py'

custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)

crop_size = 128
view_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=crop_size,
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1)
        ],
        prob=0.8),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=0.5),
    dict(type='Solarize', thr=128, prob=0.1),
]
# The data workers decode, crop and flip (DecodeMultiView); the colour
# jitter, grayscale, blur and solarisation run batched on the training
# device (PhotometricDataPreprocessor), same distributions (README, "Data
# loading"). mmpretrain's stock CPU pipeline instead:
#   --cfg-options train_dataloader.dataset.pipeline.0.photometric=cpu
views = dict(num_views=2, transforms=[view_pipeline])
data_preprocessor = dict(type='PhotometricDataPreprocessor', **views)
# `collate_fn` is restated without the `_scope_` tag that mmengine puts on
# dicts inherited through `mmpretrain::` (the Runner would pass it on).
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_seeded_worker_init_fn'),
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='PhotoFolderDataset',
        data_root=None,  # None: the photos shipped by scikit-image
        repeat=16,
        pipeline=[
            dict(type='DecodeMultiView', **views),
            dict(type='PackInputs', meta_keys=['photometric'])
        ]))

model = dict(
    base_momentum=0.01,
    backbone=dict(depth=18, norm_cfg=dict(type='BN')),
    neck=dict(
        in_channels=512,
        hid_channels=1024,
        out_channels=128,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        predictor=dict(
            in_channels=128,
            hid_channels=1024,
            out_channels=128,
            norm_cfg=dict(type='BN1d'))))

# BYOL's rule lr = 0.2 x batch / 256, no accumulation on one CPU.
optim_wrapper = dict(optimizer=dict(lr=0.2 * 16 / 256, weight_decay=1.5e-6))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-2,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=1,
        by_epoch=True,
        begin=1,
        end=2,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=2)

default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2))
custom_hooks = [dict(type='FiniteLossHook'), dict(type='RandomStateHook')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=16)
