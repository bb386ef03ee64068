# E-DIY on ViT-B/16 (ours): ./ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py
# with mmpretrain's MoCo v3 ViT-B/16 backbone (768 channels; MoCo v3's
# ViT-B/16 config has the same recipe as its ViT-S/16 one).
_base_ = './ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='base'), neck=dict(in_channels=768))
