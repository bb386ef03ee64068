# MoCo v3's ViT recipe, shared by the ViT configs of MosRep and UniVIP; not
# a config to train. From mmpretrain's
# mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py:
# - mocov3_vit_small: ViT-S/16 as MoCo v3 trains it ('mocov3-small': 384
#   channels, 12 blocks, 12 heads; fixed 2-D sin-cos position embedding,
#   stop-gradient patch projection), 224 px. FixedPosMoCoV3ViT is
#   mmpretrain's MoCoV3ViT with the embedding frozen before DDP wraps the
#   model, so DDP needs no find_unused_parameters.
# - mocov3_vit_mini: the same at CPU size (64 channels, 2 blocks, 4 heads),
#   64 px, for the tests.
# - mocov3_optim_wrapper: AdamW, weight decay 0.1, fp16 AMP; its lr is per
#   256 images (2.4e-3 at 4096): scale it by the config's batch.
# - mocov3_warmup: 40 linear warm-up epochs from 1e-4 x lr, at every step;
#   mocov3_cosine: the cosine decay after it, at every step (set T_max and
#   end to the config's epochs).
mocov3_vit_small = dict(
    type='FixedPosMoCoV3ViT',
    arch='mocov3-small',
    img_size=224,
    patch_size=16,
    stop_grad_conv1=True)
mocov3_vit_mini = dict(
    mocov3_vit_small,
    arch=dict(
        embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=256),
    img_size=64)
mocov3_optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1.5e-4, weight_decay=0.1))
mocov3_warmup = dict(
    type='LinearLR',
    start_factor=1e-4,
    by_epoch=True,
    begin=0,
    end=40,
    convert_to_iter_based=True)
mocov3_cosine = dict(
    type='CosineAnnealingLR',
    by_epoch=True,
    begin=40,
    convert_to_iter_based=True)
