# Mask R-CNN R50-FPN under MoCo's protocol: SyncBN also in the FPN and in
# the box (4 convs + 1 fc) and mask heads, as detectron2's SyncBN configs.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', '../moco_protocol.py']

model = dict(
    data_preprocessor=_base_.pytorch_normalisation,
    backbone=_base_.trainable_backbone,
    neck=dict(norm_cfg=_base_.sync_bn),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=_base_.sync_bn),
        mask_head=dict(norm_cfg=_base_.sync_bn)))
