# Mask R-CNN R50-C4 under MoCo's protocol.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50-caffe-c4.py', '../moco_protocol.py'
]

model = dict(
    data_preprocessor=_base_.pytorch_normalisation,
    backbone=_base_.trainable_backbone,
    roi_head=dict(shared_head=_base_.c4_res5_head))
