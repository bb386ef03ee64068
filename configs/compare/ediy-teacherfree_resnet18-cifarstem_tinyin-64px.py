# E-DIY teacher-free, small-image recipe: the momentum target's own layer-4
# maps (4 x 4 at 64 px) choose the regions; otherwise
# ../ediy/ediy_resnet18-cifarstem_tinyin-64px.py.
_base_ = '../ediy/ediy_resnet18-cifarstem_tinyin-64px.py'

model = dict(region_source='target', teacher=None)
