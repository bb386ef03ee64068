# Sweep variant: the ImageNet optimiser (LARS lr 0.2 per 256 images, eta
# 0.001, weight decay 1.5e-6); otherwise the small-image BYOL.
_base_ = '../../../../configs/ediy/byol_resnet18-cifarstem_tinyin-64px.py'
optim_wrapper = dict(
    optimizer=dict(lr=0.2 * 64 / 256, eta=0.001, weight_decay=1.5e-6))
