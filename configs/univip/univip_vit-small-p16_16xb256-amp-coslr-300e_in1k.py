# UniVIP on ViT-S/16 (ours: the paper trains ResNet-50 only), ImageNet-1K,
# 300 epochs. The method is ./univip_resnet50_16xb256-coslr-300e_in1k.py
# (BYOL's projector and predictor, UniVIP's views and three losses, tau_base
# 0.99, 16 GPUs x 256 = 4096 images). The backbone and the optimiser are
# MoCo v3's for ViT-S/16, at the same batch
# (mmpretrain::mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py):
# MoCoV3ViT 'mocov3-small' (fixed 2-D sin-cos position embedding,
# stop-gradient patch projection; FixedPosMoCoV3ViT freezes the embedding
# before DDP wraps the model, so DDP needs no find_unused_parameters),
# AdamW lr 2.4e-3 and weight decay 0.1, 40 linear warm-up epochs then a
# cosine decay at every step, fp16 AMP.
# Scenes and instances are embedded from the cls token (out_type=
# 'cls_token', as MoCo v3; 'avg_featmap' would embed the averaged patch
# tokens instead). The 224 px scenes are 14x14 patches and the 96 px
# instances 6x6 (the position embedding is interpolated to each grid);
# both sides must be multiples of the 16 px patch (checked).
_base_ = './univip_resnet50_16xb256-coslr-300e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='FixedPosMoCoV3ViT',
        arch='mocov3-small',  # embed_dims 384
        img_size=224,
        patch_size=16,
        stop_grad_conv1=True,
        out_type='cls_token'),
    neck=dict(in_channels=384, with_avg_pool=False))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=2.4e-3, weight_decay=0.1))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=260,
        by_epoch=True,
        begin=40,
        end=300,
        convert_to_iter_based=True)
]
