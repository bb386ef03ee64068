# BYOL, small-image recipe: ResNet-18 with the CIFAR stem (4 x 4 regions)
# on 64 px views, batch 64, e.g. Tiny ImageNet on a CPU. The recipe of
# ./byol_resnet18_cpu-128px_photos.py (mmpretrain's ImageNet BYOL) with the
# departures of ../_base_/small-image_64px.py, measured in docs/study.md:
# the CIFAR stem, no blur, solarisation on view 2 only, LARS lr 1.0 per
# 256 images with eta 0.02 and weight decay 1e-5. The images default to
# scikit-image's photos; set yours with
#   --cfg-options train_dataloader.dataset.data_root=/path/to/images
_base_ = [
    './byol_resnet18_cpu-128px_photos.py', '../_base_/small-image_64px.py'
]

model = dict(backbone=_base_.small_backbone)
data_preprocessor = dict(_base_.small_data_preprocessor, _delete_=True)
train_dataloader = dict(
    batch_size=_base_.small_batch,
    dataset=dict(pipeline=_base_.small_two_view_pipeline))
optim_wrapper = dict(optimizer=_base_.small_lars_at_batch)
auto_scale_lr = dict(base_batch_size=_base_.small_batch)
