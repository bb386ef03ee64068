# UniVIP, small-image recipe: ./univip_resnet18_cpu-64px_photos.py (64 px
# scenes, 32 px instances) with the departures of
# ../_base_/small-image_64px.py, as BYOL's: ResNet-18's CIFAR stem, BYOL's
# views without blur (solarisation on view 2 only), LARS lr 1.0 per 256
# images with eta 0.02 and weight decay 1e-5, batch 64.
_base_ = [
    './univip_resnet18_cpu-64px_photos.py', '../_base_/small-image_64px.py'
]

batch_size = 64
model = dict(backbone=_base_.small_backbone)
train_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(
            _base_.univip_views,
            num_instances=_base_.num_instances,
            scene_size=_base_.small_image_size,
            instance_size=_base_.small_image_size // 2,
            view_pipelines=[
                _base_.small_photometric_1, _base_.small_photometric_2
            ]), _base_.train_pipeline[-1]
    ]))
# the photometric steps of those views run on the training device
data_preprocessor = dict(
    transforms=[_base_.small_photometric_1, _base_.small_photometric_2] * 2)
optim_wrapper = dict(
    optimizer=dict(
        _base_.small_lars,
        lr=_base_.small_lars.lr * batch_size / _base_.small_base_batch))
auto_scale_lr = dict(base_batch_size=batch_size)
