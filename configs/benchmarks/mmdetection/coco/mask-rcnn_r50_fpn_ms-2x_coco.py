# Mask R-CNN R50-FPN on COCO under MoCo's protocol, 2x schedule:
# 24 epochs, lr steps after epochs 16 and 22, 8 GPUs x 2 images.
# Set PRETRAINED to the checkpoint to evaluate.
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance_ms.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py'
]
