#!/usr/bin/env bash
# Fine-tune a detector of configs/benchmarks/mmdetection/ from a pre-trained
# checkpoint, with mmdet's own train script under torchrun.
#
#   bash tools/benchmarks/mmdetection/dist_train_c4.sh CONFIG PRETRAIN GPUS \
#       [train.py arguments, e.g. --cfg-options k=v ... | --resume | --amp]
#
# PRETRAIN: the mmengine checkpoint (its ``backbone.`` goes into the
# backbone and, for C4, also into the res5 RoI head); passed to the config
# as the environment variable PRETRAINED.
# Environment: SEED (0), WORK_DIR (work_dirs/benchmarks/<config>/<run>),
# NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON,
# PACKAGE (mmdet; dist_train_linear.sh runs mmpretrain's train script).
set -euo pipefail

if [[ $# -lt 3 ]]; then
    sed -n '2,14p' "$0"
    exit 1
fi
CONFIG=$1
PRETRAIN=$2
GPUS=$3
shift 3
if [[ ! -f $PRETRAIN ]]; then
    echo "pre-trained checkpoint not found: $PRETRAIN" >&2
    exit 1
fi

PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
# e.g. work_dirs/benchmarks/<config>/<pre-training work dir>_epoch_300
RUN=$(basename "$(dirname "$(realpath "$PRETRAIN")")")_$(basename "$PRETRAIN" .pth)
WORK_DIR=${WORK_DIR:-work_dirs/benchmarks/$(basename "$CONFIG" .py)/$RUN}
TRAIN=$("$PYTHON" -c "import os.path as p, ${PACKAGE:=mmdet} as m; print(p.join(p.dirname(m.__file__), '.mim', 'tools', 'train.py'))")

# python -m torch.distributed.run is torchrun, with this Python.
PRETRAINED=$PRETRAIN PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    "$TRAIN" "$CONFIG" --launcher pytorch --work-dir "$WORK_DIR" \
    --cfg-options randomness.seed="${SEED:-0}" "$@"
