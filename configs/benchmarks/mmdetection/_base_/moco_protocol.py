# MoCo's detection transfer protocol (He et al., CVPR 2020, and its
# detectron2 configs), which E-DIY's paper follows. Shared pieces of every
# config in this folder; the model bases apply them to mmdet's models.

# The checkpoint to evaluate: an mmengine checkpoint (a .pth written by
# tools/train.py) whose online backbone is under ``backbone.``. The rest of
# it (neck, head, momentum target, teacher) is not loaded. mmengine fixes a
# config's variables when it reads the file, so ``--cfg-options
# pretrained=...`` would not reach the ``init_cfg``s below: set the
# environment variable PRETRAINED instead (the dist_train_*.sh scripts do).
pretrained = '{{$PRETRAINED:PRETRAINED-is-not-set.pth}}'
pretrained_init = dict(
    type='Pretrained', checkpoint=pretrained, prefix='backbone.')

# Registers ExtraNormResLayer into mmdet's registry; the import also makes
# mmengine load its own checkpoints safely on torch >= 2.6.
custom_imports = dict(
    imports=['ediy_mm.mmdet_plugins'], allow_failed_imports=False)

# SyncBN everywhere. mmengine's Runner turns it into BN when it does not
# run distributed.
sync_bn = dict(type='SyncBN', requires_grad=True)

# The normalisation the backbone was pre-trained with: torchvision's mean
# and std of RGB images (mmdet's C4 configs default to caffe's, in BGR).
pytorch_normalisation = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)

# Every stage trains, and BN statistics keep updating.
trainable_backbone = dict(
    frozen_stages=-1,
    norm_cfg=sync_bn,
    norm_eval=False,
    style='pytorch',
    init_cfg=pretrained_init)

# C4: res5 runs as the RoI head, starts from the same checkpoint's res5
# (``backbone.layer4``) and ends in an extra norm.
c4_res5_head = dict(
    type='ExtraNormResLayer',
    norm_cfg=sync_bn,
    norm_eval=False,
    style='pytorch',
    init_cfg=pretrained_init)
