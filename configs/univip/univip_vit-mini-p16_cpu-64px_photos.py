# UniVIP on a CPU-sized ViT/16 (64 channels, 2 blocks, 4 heads): the model
# of ./univip_vit-small-p16_16xb256-amp-coslr-300e_in1k.py in miniature
# (cls-token embeddings, AdamW with MoCo v3's lr rule, without AMP), the
# data and schedule of ./univip_resnet18_cpu-64px_photos.py: 64 px scenes
# (4x4 patches), 32 px instances (2x2 patches), K = 2. Compute the
# proposals first (see that config). Used by the tests.
_base_ = ['./univip_resnet18_cpu-64px_photos.py', '../_base_/mocov3-vit.py']

model = dict(
    backbone=dict(_base_.mocov3_vit_mini, _delete_=True, out_type='cls_token'),
    neck=dict(in_channels=64, with_avg_pool=False))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        _base_.mocov3_optim_wrapper.optimizer,
        lr=_base_.mocov3_optim_wrapper.optimizer.lr * 8 / 256))
