# Table 2, row 2: lambda_1 (R-DEM) = 0.1.
_base_ = '../ediy_resnet50_16xb128-accum2-lars-coslr-100e_in1k.py'

model = dict(head=dict(lambda_rdem=0.1))
