# UniVIP on a CPU-sized ViT/16 (64 channels, 2 blocks, 4 heads): the model
# of ./univip_vit-small-p16_16xb256-amp-coslr-300e_in1k.py in miniature
# (cls-token embeddings, AdamW with MoCo v3's lr rule), the data and
# schedule of ./univip_resnet18_cpu-64px_photos.py: 64 px scenes (4x4
# patches), 32 px instances (2x2 patches), K = 2. Compute the proposals
# first (see that config). Used by the tests.
_base_ = './univip_resnet18_cpu-64px_photos.py'

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
        out_type='cls_token'),
    neck=dict(in_channels=64, with_avg_pool=False))

# MoCo v3's rule for ViTs: lr = 1.5e-4 x batch / 256, weight decay 0.1.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 8 / 256, weight_decay=0.1))
