#!/usr/bin/env bash
# The GPU study of docs/study.md in one command, on a machine whose Python
# already has torch and torchvision (e.g. Python 3.12 + torch 2.11) and that
# reaches no package registry. Torch is used as it is, never re-installed.
#
#   # 1. where a registry is reachable: the wheels the GPU machine lacks
#   bash tools/gpu_study.sh wheels WHEELS_DIR
#   # 2. on the GPU machine, from the repository root
#   bash tools/gpu_study.sh run WHEELS_DIR DATA DENSE [compare_methods.py options]
#
# `wheels` downloads requirements/gpu_study.txt for CPython $PYVER (default
# 3.12) on x86-64 Linux, mmpretrain 1.2.0 and mmdet 3.3.0, and builds mmcv
# 2.1.0 without its ops (MMCV_WITH_OPS=0 gives the pure-Python wheel
# mmcv_lite-2.1.0-py3-none-any.whl, about a minute).
# `run` makes a venv that sees the system's packages (--system-site-packages:
# the present torch), installs the wheels with --no-index, ediy_mm in
# editable mode with --no-deps, then runs
#   compare_methods.py --preset gpu-tinyin --data DATA --dense DENSE
# with DATA a labelled folder (tiny-imagenet-200-s150) and DENSE a COCO-style
# folder with masks (coco-person-s400). Run it again to resume.
#
# Environment: VENV (default work_dirs/gpu_venv), WORK_DIR (default
# work_dirs/study_gpu), PYVER (wheels only), PYTHON (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 2 ]] || usage
command="$1" wheels="$2"
shift 2

case "$command" in
wheels)
    PYVER="${PYVER:-3.12}"
    mkdir -p "$wheels"
    pip download --dest "$wheels" --only-binary=:all: \
        --python-version "$PYVER" --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 \
        -r "$ROOT/requirements/gpu_study.txt"
    pip download --dest "$wheels" --no-deps mmpretrain==1.2.0 mmdet==3.3.0
    MMCV_WITH_OPS=0 pip wheel --wheel-dir "$wheels" --no-deps \
        --no-binary mmcv mmcv==2.1.0
    ls "$wheels"/mmcv_lite-2.1.0-*.whl
    ;;
run)
    [[ $# -ge 2 ]] || usage
    data="$1" dense="$2"
    shift 2
    venv="${VENV:-$ROOT/work_dirs/gpu_venv}"
    "${PYTHON:-python3}" -c 'import torch, torchvision' || {
        echo "error: ${PYTHON:-python3} has no torch/torchvision to reuse" >&2
        exit 1
    }
    [[ -x "$venv/bin/python" ]] ||
        "${PYTHON:-python3}" -m venv --system-site-packages "$venv"
    pip_install() {
        "$venv/bin/python" -m pip install --disable-pip-version-check \
            --no-index --find-links "$wheels" "$@"
    }
    pip_install -r "$ROOT/requirements/gpu_study.txt"
    pip_install --no-deps mmcv-lite==2.1.0 mmpretrain==1.2.0 mmdet==3.3.0
    pip_install --no-deps --no-build-isolation -e "$ROOT"
    "$venv/bin/python" -c 'import torch, mmpretrain, ediy_mm
print("torch", torch.__version__, "CUDA", torch.cuda.is_available())'
    cd "$ROOT"
    exec "$venv/bin/python" tools/analysis_tools/compare_methods.py \
        --preset gpu-tinyin --data "$data" --dense "$dense" \
        --work-dir "${WORK_DIR:-work_dirs/study_gpu}" "$@"
    ;;
*) usage ;;
esac
