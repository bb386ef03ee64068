# Table 1, row 1: BYOL alone (no R-DEM, no R-IEM). With both region weights 0
# the local projector and the teacher are not run.
_base_ = '../ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py'

model = dict(head=dict(lambda_rdem=0., lambda_riem=0.))
