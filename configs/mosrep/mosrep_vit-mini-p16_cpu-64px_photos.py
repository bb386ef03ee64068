# MosRep on a CPU-sized ViT/16 (64 channels, 2 blocks, 4 heads): the model
# of ./mosrep_vit-small-p16_8xb64-amp-coslr-200e_in1k.py in miniature
# (FixedPosMoCoV3ViT, cells pooled from the patch grid at 1/16, AdamW with MoCo
# v3's lr rule), the data and schedule of ./mosrep_resnet18_cpu-64px_photos.py
# (64 px views, 32 px crops: each 64 px mosaic is 4x4 patches, a cell 2x2).
# Used by the tests; any folder of images can replace the photos:
#   --cfg-options train_dataloader.dataset.data_root=/path/to/images
_base_ = './mosrep_resnet18_cpu-64px_photos.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='FixedPosMoCoV3ViT',
        arch=dict(
            embed_dims=64, num_layers=2, num_heads=4,
            feedforward_channels=256),
        img_size=64,
        patch_size=16,
        stop_grad_conv1=True,
        out_type='featmap'),
    neck=dict(in_channels=64, hid_channels=128),
    mosaic=dict(spatial_scale=1 / 16))

# MoCo v3's rule for ViTs: lr = 1.5e-4 x batch / 256, weight decay 0.1.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 8 / 256, weight_decay=0.1))
