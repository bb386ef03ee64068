# Mask R-CNN R50-C4 on COCO under MoCo's protocol, 1x schedule:
# 12 epochs, lr steps after epochs 8 and 11, 8 GPUs x 2 images.
# Set PRETRAINED to the checkpoint to evaluate.
_base_ = [
    '../_base_/models/mask-rcnn_r50-c4.py',
    '../_base_/datasets/coco_instance_ms.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]
