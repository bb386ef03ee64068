# Table 1, row 2: R-DEM (TG) alone.
_base_ = '../ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py'

model = dict(head=dict(lambda_riem=0., lambda_byol=0.))
