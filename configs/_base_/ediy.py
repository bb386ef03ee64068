# E-DIY's projectors and head (Sec. 3.2, 4.2), shared by its ImageNet
# configs; not a config to train.
# - ediy_neck: the global and local projectors, BYOL's architecture
#   (fc-BN-ReLU-fc, 4096 hidden, 256 out); set in_channels to the
#   backbone's (and global_input='cls_token' for a ViT's cls token).
# - ediy_head: BYOL's predictor and the three terms of eq. 3, lambda = 1
#   each, RDEM's negatives drawn from the other regions.
ediy_neck = dict(
    type='EDIYNeck',
    hid_channels=4096,
    out_channels=256,
    with_bias=True,
    with_last_bn=False)
ediy_head = dict(
    type='EDIYHead',
    predictor=dict(
        type='NonLinearNeck',
        in_channels=256,
        hid_channels=4096,
        out_channels=256,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_avg_pool=False),
    lambda_rdem=1.0,  # lambda_1 of eq. 3
    lambda_riem=1.0,  # lambda_2
    lambda_byol=1.0,  # lambda_3
    rdem_negative='region')
