# Table 2, row 3: lambda_2 (R-IEM) = 0.1.
_base_ = '../ediy_resnet50_16xb128-accum2-lars-coslr-100e_in1k.py'

model = dict(head=dict(lambda_riem=0.1))
