# MosRep on a CPU-sized ViT/16 (64 channels, 2 blocks, 4 heads): the model
# of ./mosrep_vit-small-p16_8xb64-amp-coslr-200e_in1k.py in miniature
# (cells pooled from the patch grid at 1/16, AdamW with MoCo v3's lr rule,
# without AMP), the data and schedule of ./mosrep_resnet18_cpu-64px_photos.py
# (64 px views, 32 px crops: each 64 px mosaic is 4x4 patches, a cell 2x2).
# Used by the tests; any folder of images can replace the photos:
#   --cfg-options train_dataloader.dataset.data_root=/path/to/images
_base_ = ['./mosrep_resnet18_cpu-64px_photos.py', '../_base_/mocov3-vit.py']

model = dict(
    backbone=dict(_base_.mocov3_vit_mini, _delete_=True, out_type='featmap'),
    neck=dict(in_channels=64, hid_channels=128),
    mosaic=dict(spatial_scale=1 / 16))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        _base_.mocov3_optim_wrapper.optimizer,
        lr=_base_.mocov3_optim_wrapper.optimizer.lr * 8 / 256))
