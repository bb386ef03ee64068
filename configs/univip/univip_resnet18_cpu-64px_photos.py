# UniVIP, CPU-sized: ResNet-18, 64 px scenes, 32 px instances, K = 2, on
# real photos (scikit-image's by default). Compute their proposals first:
#   python tools/dataset_converters/univip_proposals.py \
#       ~/.cache/ediy_mm/skimage_photos --max-side 160 \
#       --out work_dirs/univip_proposals/skimage_photos.json
# For your own images set train_dataloader.dataset.data_root and
# proposal_file.
_base_ = './univip_resnet50_16xb256-coslr-200e_in1k.py'

num_instances = 2
data_preprocessor = dict(num_views=[1, 1, num_instances, num_instances])
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=None,  # None: the photos shipped by scikit-image
        proposal_file='work_dirs/univip_proposals/skimage_photos.json',
        repeat=8,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                _base_.univip_views,
                num_instances=num_instances,
                scene_size=64,
                instance_size=32), _base_.train_pipeline[-1]
        ]))

model = dict(
    backbone=dict(depth=18, norm_cfg=dict(type='BN')),
    neck=dict(
        in_channels=512,
        hid_channels=1024,
        out_channels=128,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        predictor=dict(
            in_channels=128,
            hid_channels=1024,
            out_channels=128,
            norm_cfg=dict(type='BN1d')),
        num_instances=num_instances,
        embed_dim=128))

# BYOL's rule lr = 0.3 x batch / 256 (mmpretrain's 4.8 for 4096).
optim_wrapper = dict(optimizer=dict(lr=0.3 * 8 / 256))
# 1 warm-up epoch + 1 cosine epoch.
param_scheduler = [
    dict(_base_.param_scheduler[0], start_factor=1e-2, end=1),
    dict(
        _base_.param_scheduler[1],
        T_max=1,
        begin=1,
        end=2,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=2)
default_hooks = dict(
    logger=dict(interval=4), checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=8)
