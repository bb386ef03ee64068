# E-DIY on ConvNeXt-T (ours): the recipe of
# ./ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py (MoCo v3's AdamW
# recipe, not tuned for ConvNeXt) with mmpretrain's ConvNeXt-T; its last
# stage, 7x7 at 224 px (not pooled: gap_before_final_norm=False), is the
# map of regions and, average-pooled, the global input. It has the output
# stride (32) of the ResNet-50 teacher: the grids match without
# region_grid.
_base_ = './ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch='tiny',
        out_indices=(3, ),
        gap_before_final_norm=False),
    neck=dict(in_channels=768, global_input='map'),
    region_grid=None)
