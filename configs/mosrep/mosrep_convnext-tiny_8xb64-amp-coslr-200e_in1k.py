# MosRep on ConvNeXt-T (ours): the MosRep and the AdamW recipe of
# ./mosrep_vit-small-p16_8xb64-amp-coslr-200e_in1k.py (MoCo v3's, not tuned
# for ConvNeXt) with mmpretrain's ConvNeXt-T. The cells are pooled from its
# last stage, not averaged (gap_before_final_norm=False): 7x7 at 224 px,
# stride 32 as ResNet-50's layer 4, RoIAlign at spatial scale 1/32.
_base_ = './mosrep_vit-small-p16_8xb64-amp-coslr-200e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch='tiny',
        out_indices=(3, ),
        gap_before_final_norm=False),
    neck=dict(in_channels=768),
    mosaic=dict(spatial_scale=1 / 32))
