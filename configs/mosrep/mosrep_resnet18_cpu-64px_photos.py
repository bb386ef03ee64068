# MosRep, CPU-sized: ResNet-18, 64 px views and 32 px local crops (2x2
# mosaics of 64 px, jitter up to 14 px = 48/112 of a crop, as released),
# batch 8, queue 256, on real photos (scikit-image's by default). Used by
# the tests and by `tools/demo.py --method mosrep`. Any folder of images
# can replace the photos:
#   --cfg-options train_dataloader.dataset.data_root=/path/to/images
_base_ = './mosrep_resnet50_8xb64-coslr-200e_in1k.py'

model = dict(
    queue_len=256,
    backbone=dict(depth=18),
    neck=dict(in_channels=512, hid_channels=512, out_channels=128),
    mosaic=dict(jitter_pixels=14))

global_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.2, 1.),
        backend='pillow'), *_base_.mocov2_augmentations
]
local_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=32,
        crop_ratio_range=(0.1, 0.6),
        backend='pillow'), *_base_.mocov2_augmentations
]
views = dict(num_views=[2, 4], transforms=[global_pipeline, local_pipeline])
data_preprocessor = dict(**views)
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type='PhotoFolderDataset',
        data_root=None,  # None: the photos shipped by scikit-image
        repeat=16,
        pipeline=[
            dict(type='DecodeMultiView', **views),
            dict(type='PackInputs', meta_keys=['photometric'])
        ]))

# MoCo v2's lr 0.03 (the release: 0.06 at batch 512) kept at batch 8 so
# that short CPU runs move; one warm-up epoch, then cosine (the layout of
# the other CPU configs, which tools/demo.py sets by index).
optim_wrapper = dict(optimizer=dict(lr=0.03))
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
    logger=dict(interval=4), checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=8)
