# MosRep on ViT-S/16 (ours: the paper and its release train ResNet-50
# only). The method is the released MosRep of
# ./mosrep_resnet50_8xb64-coslr-200e_in1k.py: MoCo v2 with its queue, its
# 1x1-conv projector, 2 x 224 px views + 4 x 112 px local crops in jittered
# 2x2 mosaics, RoIAlign 7x7, tau 0.2, m 0.999, 8 GPUs x 64 = 512 images.
# The backbone and the optimiser are MoCo v3's for ViT-S/16
# (mmpretrain::mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py):
# MoCoV3ViT 'mocov3-small' (fixed 2-D sin-cos position embedding,
# stop-gradient patch projection; FixedPosMoCoV3ViT freezes the embedding
# before DDP wraps the model, so DDP needs no find_unused_parameters),
# AdamW with lr 1.5e-4 per 256 images (2.4e-3 at 4096 there) and weight
# decay 0.1, 40 linear warm-up epochs then a cosine decay at every step,
# fp16 AMP. The cells are pooled from
# the patch grid (out_type='featmap'): the 224 px mosaic is 14x14 patches,
# each 112 px cell 7x7 of them, RoIAlign at spatial scale 1/16.
_base_ = './mosrep_resnet50_8xb64-coslr-200e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='FixedPosMoCoV3ViT',
        arch='mocov3-small',  # embed_dims 384
        img_size=224,
        patch_size=16,
        stop_grad_conv1=True,
        out_type='featmap'),
    neck=dict(in_channels=384),
    mosaic=dict(spatial_scale=1 / 16))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 512 / 256, weight_decay=0.1))
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
        T_max=160,
        by_epoch=True,
        begin=40,
        end=200,
        convert_to_iter_based=True)
]
