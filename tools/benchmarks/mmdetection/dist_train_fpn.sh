#!/usr/bin/env bash
# Fine-tune an FPN detector of configs/benchmarks/mmdetection/ from a
# pre-trained checkpoint; arguments and environment as dist_train_c4.sh.
# The configs themselves say where the checkpoint goes (FPN: the backbone;
# C4: the backbone and the res5 RoI head), so both share one launcher.
exec bash "$(dirname "${BASH_SOURCE[0]}")/dist_train_c4.sh" "$@"
