# Table 2, row 1: lambda_3 (BYOL) = 0.1, lambda_1 = lambda_2 = 1.
_base_ = '../ediy_resnet50_16xb128-accum2-lars-coslr-100e_in1k.py'

model = dict(head=dict(lambda_byol=0.1))
