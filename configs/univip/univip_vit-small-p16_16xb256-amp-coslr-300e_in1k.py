# UniVIP on ViT-S/16 (ours: the paper trains ResNet-50 only), ImageNet-1K,
# 300 epochs. The method is ./univip_resnet50_16xb256-coslr-300e_in1k.py
# (BYOL's projector and predictor, UniVIP's views and three losses, tau_base
# 0.99, 16 GPUs x 256 = 4096 images). The backbone and the optimiser are
# MoCo v3's for ViT-S/16 at the same batch (../_base_/mocov3-vit.py):
# MoCoV3ViT 'mocov3-small', AdamW lr 2.4e-3 and weight decay 0.1, 40
# linear warm-up epochs then a cosine decay at every step, fp16 AMP.
# Scenes and instances are embedded from the cls token (out_type=
# 'cls_token', as MoCo v3; 'avg_featmap' would embed the averaged patch
# tokens instead). The 224 px scenes are 14x14 patches and the 96 px
# instances 6x6 (the position embedding is interpolated to each grid);
# both sides must be multiples of the 16 px patch (checked).
_base_ = [
    './univip_resnet50_16xb256-coslr-300e_in1k.py', '../_base_/mocov3-vit.py'
]

model = dict(
    backbone=dict(
        _base_.mocov3_vit_small, _delete_=True, out_type='cls_token'),
    neck=dict(in_channels=384, with_avg_pool=False))

optim_wrapper = dict(
    _base_.mocov3_optim_wrapper,
    _delete_=True,
    optimizer=dict(
        _base_.mocov3_optim_wrapper.optimizer,
        lr=_base_.mocov3_optim_wrapper.optimizer.lr * 4096 / 256))
param_scheduler = [
    _base_.mocov3_warmup,
    dict(_base_.mocov3_cosine, T_max=260, end=300)
]
