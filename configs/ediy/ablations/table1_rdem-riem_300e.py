# Table 1, row 4: R-DEM (TG) + R-IEM (TG), no BYOL.
_base_ = '../ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py'

model = dict(head=dict(lambda_byol=0.))
