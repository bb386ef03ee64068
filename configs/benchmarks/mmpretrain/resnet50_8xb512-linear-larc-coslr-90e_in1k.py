# ImageNet-1k linear probe following MosRep's released protocol
# (DerrickWang005/MosRep.pytorch: linear_prob.py as linear_mosrep.sh runs it),
# the protocol of the release's numbers (MoCo v2 67.7, with multi-crop 69.8,
# MosRep 72.3 at 200 epochs). The pre-trained ResNet-50 is frozen (the
# release keeps the whole model in eval mode, BN statistics included) and a
# linear classifier (weights N(0, 0.01), bias 0) trains for 90 epochs on
# 8 GPUs x 512 = 4096 images per step with SGD (momentum 0.9, no weight
# decay) wrapped in apex's LARC (trust coefficient 0.001, clip=False, eps
# 1e-8; here the registered optimiser `LARC`). The peak lr is 3.2: the
# script's --lr 0.1 is scaled twice, by the total batch (0.1 x 4096 / 256 =
# 1.6) and again by the per-GPU batch (1.6 x 512 / 256 = 3.2); it decays by
# a cosine once per epoch to 0, with no warm-up. Train: random resized crop
# 224 (scale 0.08-1) and flip; test: centre crop 224 of the image resized to
# 256. The release reports the best top-1 over the epochs.
_base_ = './resnet50_8xb128-linear-nesterov-coslr-80e_in1k.py'

train_dataloader = dict(batch_size=512)

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='LARC',
        lr=3.2,
        momentum=0.9,
        weight_decay=0.,
        trust_coefficient=0.001,
        clip=False,
        eps=1e-8))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=0.,
        by_epoch=True,
        begin=0,
        end=90)
]
train_cfg = dict(max_epochs=90)
auto_scale_lr = dict(base_batch_size=4096)

default_hooks = dict(
    checkpoint=dict(save_best='accuracy/top1', rule='greater'))
