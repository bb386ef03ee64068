# MosRep on ViT-S/16 (ours: the paper and its release train ResNet-50
# only). The method is the released MosRep of
# ./mosrep_resnet50_8xb64-coslr-200e_in1k.py: MoCo v2 with its queue, its
# 1x1-conv projector, 2 x 224 px views + 4 x 112 px local crops in jittered
# 2x2 mosaics, RoIAlign 7x7, tau 0.2, m 0.999, 8 GPUs x 64 = 512 images.
# The backbone and the optimiser are MoCo v3's for ViT-S/16
# (../_base_/mocov3-vit.py): MoCoV3ViT 'mocov3-small', AdamW with lr 1.5e-4
# per 256 images and weight decay 0.1, 40 linear warm-up epochs then a
# cosine decay at every step, fp16 AMP. The cells are pooled from the patch
# grid (out_type='featmap'): the 224 px mosaic is 14x14 patches, each
# 112 px cell 7x7 of them, RoIAlign at spatial scale 1/16.
_base_ = [
    './mosrep_resnet50_8xb64-coslr-200e_in1k.py', '../_base_/mocov3-vit.py'
]

model = dict(
    backbone=dict(_base_.mocov3_vit_small, _delete_=True, out_type='featmap'),
    neck=dict(in_channels=384),
    mosaic=dict(spatial_scale=1 / 16))

optim_wrapper = dict(
    _base_.mocov3_optim_wrapper,
    _delete_=True,
    optimizer=dict(
        _base_.mocov3_optim_wrapper.optimizer,
        lr=_base_.mocov3_optim_wrapper.optimizer.lr * 512 / 256))
param_scheduler = [
    _base_.mocov3_warmup,
    dict(_base_.mocov3_cosine, T_max=160, end=200)
]
