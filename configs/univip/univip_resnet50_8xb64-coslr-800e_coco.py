# UniVIP on COCO train2017 (non-iconic images), 800 epochs, batch 512
# (8 GPUs x 64), with ORL's COCO recipe: UniVIP's COCO rows (Table 1) share
# ORL's setting, and ORL's public config (Jiahao000/ORL,
# configs/selfsup/orl/coco/stage3/r50_bs512_ep800.py) trains with SGD lr
# 0.4, momentum 0.9, weight decay 1e-4 on every parameter, 4 linear warm-up
# epochs (from 1e-4 x lr) then cosine to 0, tau_base 0.99, 96 px patches,
# fp16. The ImageNet configs keep BYOL's LARS at 4096. Compute the
# proposals first:
#   python tools/dataset_converters/univip_proposals.py data/coco/train2017 \
#       --coco data/coco/annotations/instances_train2017.json \
#       --out data/coco/univip_proposals_train2017.json --workers 16
_base_ = './univip_resnet50_16xb256-coslr-200e_in1k.py'

train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        data_root='data/coco/train2017',
        proposal_file='data/coco/univip_proposals_train2017.json'))

model = dict(base_momentum=0.01)  # tau_base = 0.99, ORL's base_momentum

# SGD, no LARS and no exclusion from weight decay (ORL builds SGD on all the
# parameters); fp16 with dynamic loss scaling, as ORL's apex fp16. On a
# machine without CUDA: --cfg-options optim_wrapper.type=OptimWrapper.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, weight_decay=1e-4))
# Both phases step at every iteration (ORL's mmcv hook warms up per
# iteration and decays per epoch over all 800 epochs: docs/univip.md).
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=4,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=796,
        eta_min=0.,
        by_epoch=True,
        begin=4,
        end=800,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=800)
auto_scale_lr = dict(base_batch_size=512)
