# E-DIY, small-image recipe: ./ediy_resnet18_cpu-128px_photos.py with the
# departures of ../_base_/small-image_64px.py (as
# ./byol_resnet18-cifarstem_tinyin-64px.py for BYOL): ResNet-18 with the
# CIFAR stem, 64 px views end in 4 x 4 regions. The teacher is that BYOL
# (same backbone, same stride: regions correspond cell by cell); set it with
#   --cfg-options model.teacher.checkpoint=PATH
_base_ = [
    './ediy_resnet18_cpu-128px_photos.py', '../_base_/small-image_64px.py'
]

model = dict(
    backbone=_base_.small_backbone,
    teacher=dict(
        checkpoint='work_dirs/byol_resnet18-cifarstem_tinyin-64px/'
        'epoch_2.pth',
        backbone=_base_.small_backbone))
data_preprocessor = dict(_base_.small_data_preprocessor, _delete_=True)
train_dataloader = dict(
    batch_size=_base_.small_batch,
    dataset=dict(pipeline=_base_.small_two_view_pipeline))
optim_wrapper = dict(optimizer=_base_.small_lars_at_batch)
auto_scale_lr = dict(base_batch_size=_base_.small_batch)
