# E-DIY on ViT-S/16 without an external teacher (ours): the momentum
# target's own 14x14 patch grids choose the regions of eq. 4 and eq. 6 (no
# extra model, no extra forward pass, no grid to reconcile).
_base_ = './ediy_vit-small-p16_16xb256-amp-coslr-300e_in1k.py'

model = dict(region_source='target', region_grid=None, teacher=None)
