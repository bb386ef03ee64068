# Table 1, row 9: BYOL + R-INS + R-IEM (TG): the R-DEM negative is the global
# embedding of another image of the batch (as in DenseCL).
_base_ = '../ediy_resnet50_16xb128-accum2-lars-coslr-300e_in1k.py'

model = dict(head=dict(rdem_negative='instance'))
