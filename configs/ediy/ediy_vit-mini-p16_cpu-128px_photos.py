# E-DIY on a CPU-sized ViT/16 (64 channels, 2 blocks, 4 heads) at 128 px on
# real photos: the model of ./ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py
# in miniature (cls token for the global branch, the 8x8 patch grid for the
# regions, AdamW with MoCo v3's lr rule), the data, schedule and teacher of
# ./ediy_resnet18_cpu-128px_photos.py. The CPU BYOL ResNet-18 teacher's map
# is 4x4 at 128 px: region_grid='interpolate' resizes it to the 8x8 grid.
# Teacher-free: --cfg-options model.region_source=target model.teacher=None
_base_ = './ediy_resnet18_cpu-128px_photos.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClsAndMapMoCoV3ViT',
        arch=dict(
            embed_dims=64, num_layers=2, num_heads=4,
            feedforward_channels=256),
        img_size=128,
        patch_size=16,
        stop_grad_conv1=True),
    neck=dict(
        in_channels=64,
        hid_channels=256,
        out_channels=64,
        global_input='cls_token'),
    head=dict(
        predictor=dict(in_channels=64, hid_channels=256, out_channels=64)),
    region_grid='interpolate')

# MoCo v3's rule for ViTs: lr = 2.4e-3 x batch / 4096, weight decay 0.1.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2.4e-3 * 16 / 4096, weight_decay=0.1))

custom_hooks = [
    dict(type='TeacherHook'),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook')
]
