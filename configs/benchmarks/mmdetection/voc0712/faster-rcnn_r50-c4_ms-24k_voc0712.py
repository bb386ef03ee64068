# Faster R-CNN R50-C4 on VOC07+12 trainval under MoCo's protocol: 24k
# iterations of 16 images (8 GPUs x 2), lr steps at 18k and 22k,
# multi-scale training (shorter side 480-800 px), tested on VOC2007 test
# at 800 px, reporting AP (the mean over IoU 0.50:0.95), AP50 and AP75.
# Set PRETRAINED to the checkpoint to evaluate.
_base_ = [
    'mmdet::pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py',
    '../_base_/moco_protocol.py'
]

model = dict(
    data_preprocessor=_base_.pytorch_normalisation,
    backbone=_base_.trainable_backbone,
    roi_head=dict(shared_head=_base_.c4_res5_head))

# VOC2007 and VOC2012 differ in their ``dataset_type`` meta information,
# which ConcatDataset refuses unless told to ignore it (the mmdet config
# inherited here omits this).
train_dataloader = dict(dataset=dict(ignore_keys=['dataset_type']))

max_iter = 24000
train_cfg = dict(max_iters=max_iter)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iter,
        by_epoch=False,
        milestones=[18000, 22000],
        gamma=0.1)
]

# VOC2007's 11-point AP at each IoU threshold; ``pascal_voc/mAP`` is their
# mean, detectron2's "AP" in MoCo's tables.
val_evaluator = dict(
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator
