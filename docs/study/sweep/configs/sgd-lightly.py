# Sweep variant: SGD as lightly's CIFAR-10 benchmarks (lr 0.06 per 128
# images, momentum 0.9, weight decay 5e-4); otherwise the small-image BYOL.
_base_ = '../../../../configs/ediy/byol_resnet18-cifarstem_tinyin-64px.py'
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='SGD',
        lr=0.06 * 64 / 128,
        momentum=0.9,
        weight_decay=5e-4))
