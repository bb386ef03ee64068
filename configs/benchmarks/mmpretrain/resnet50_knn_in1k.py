# Weighted k-NN classification of frozen ResNet-50 features on ImageNet-1k
# (Wu et al., 2018; the protocol of DINO and mmselfsup): the pooled,
# L2-normalised features of the un-augmented training images form the
# memory bank. Run it with
#   tools/benchmarks/mmpretrain/knn_eval.py CONFIG CHECKPOINT
# (mmpretrain 1.2.0 ships no k-NN evaluation).
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py'
]

custom_imports = dict(imports=['ediy_mm'], allow_failed_imports=False)

# Features only: the backbone and the global average pooling.
model = dict(head=None)

train_dataloader = dict(
    batch_size=128,
    sampler=dict(shuffle=False),
    dataset=dict(pipeline=_base_.test_pipeline))
val_dataloader = dict(batch_size=128)
