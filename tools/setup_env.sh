#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#
# Idempotent: a stamp keyed on this script and the requirement files makes a
# second run return in seconds. pip's wheel cache keeps the mmcv build, so a
# fresh .venv on the same machine does not compile mmcv again.
#
# Environment variables:
#   PYTHON       interpreter used to create the venv (default: python3.11)
#   VENV         venv directory (default: <repo>/.venv)
#   MAX_JOBS     parallel compile jobs for mmcv (default: number of cores)
#   FORCE_CUDA   1 to build mmcv's CUDA kernels (default: 1 when a GPU is seen)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
MMCV_PIN=mmcv==2.1.0

log() { printf '[setup_env %(%H:%M:%S)T] %s\n' -1 "$*"; }

key="$(cat "$ROOT/tools/setup_env.sh" "$ROOT"/requirements/*.txt "$ROOT/setup.cfg" "$ROOT/pyproject.toml" \
       | sha256sum | cut -c1-16)"
stamp="$VENV/.ediy_mm-env-$key"
if [[ -f "$stamp" ]]; then
    log "environment $VENV is up to date ($key)"
    exit 0
fi

start=$SECONDS
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_install() {
    "$PY" -m pip install --disable-pip-version-check -c "$ROOT/requirements/constraints.txt" "$@"
}

log "installing build tools (setuptools<82: mmcv and mmengine import pkg_resources)"
pip_install -q setuptools wheel ninja

log "installing ${TORCH_PINS[*]}"
pip_install -q "${TORCH_PINS[@]}"

# Mmcv's dependencies first, so that the mmcv build below only compiles.
log "installing mmengine and the runtime requirements"
pip_install -q mmengine==0.10.7 addict packaging Pillow pyyaml yapf opencv-python

if "$PY" -c 'import mmcv.ops' >/dev/null 2>&1; then
    log "mmcv with ops already installed"
else
    cuda_flags=()
    if [[ "${FORCE_CUDA:-}" == 1 ]] || { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
        export FORCE_CUDA=1
        export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$("$PY" -c \
            'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null || echo 9.0)}"
        # A CPU-only wheel may sit in pip's cache: build the CUDA one afresh.
        cuda_flags=(--no-cache-dir)
        log "GPU found: building mmcv with CUDA ops for arch $TORCH_CUDA_ARCH_LIST"
    fi
    # torch 2.14's headers need C++20; mmcv 2.1.0's setup.py forces -std=c++17.
    # A g++ wrapper first on PATH rewrites the standard flag.
    wrap="$(mktemp -d)"
    trap 'rm -rf "$wrap"' EXIT
    real_cxx="$(command -v g++)"
    cat >"$wrap/g++" <<EOF
#!/usr/bin/env bash
args=()
for a in "\$@"; do
    case "\$a" in -std=c++14|-std=c++17) a=-std=c++20 ;; esac
    args+=("\$a")
done
exec "$real_cxx" "\${args[@]}"
EOF
    chmod +x "$wrap/g++"
    cores="$(nproc)"
    log "building $MMCV_PIN with ops from source: about 27 min on 2 cores, once per machine (pip caches the wheel)"
    PATH="$wrap:$PATH" CXX="$wrap/g++" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$cores}" \
        pip_install --no-build-isolation "${cuda_flags[@]}" "$MMCV_PIN"
fi

log "installing mmpretrain, mmdet and the test tools"
pip_install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" "$MMCV_PIN"

log "installing ediy_mm in editable mode"
pip_install -q --no-deps --no-build-isolation -e "$ROOT"

if "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("transformers") is None)'; then
    echo "error: transformers is installed in $VENV; it breaks mmpretrain's imports. Remove it." >&2
    exit 1
fi
"$PY" -c 'import mmcv.ops, mmdet, mmpretrain, ediy_mm; print("stack:", "mmcv", mmcv.__version__, "mmdet", mmdet.__version__, "mmpretrain", mmpretrain.__version__)'

rm -f "$VENV"/.ediy_mm-env-*
touch "$stamp"
log "environment ready in $((SECONDS - start)) s"
