#!/usr/bin/env bash
# Does the `cuda` feature (candle's CUDA backend for the prior) still compile? These machines
# have no GPU and Debian has no CUDA toolkit, so this takes nvcc and the CUDA headers and
# libraries from PyPI's NVIDIA wheels into a virtual environment and builds with them.
# It proves the library compiles with its CUDA backend; nothing runs on a GPU here.
# Usage: scripts/check_cuda_build.sh [COMPUTE_CAP]   (default 80)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CUDA_VENV:-target/cuda-venv}
python3 -m venv "$venv"
# CUDA 13's wheels carry nvcc itself (the cu12 nvcc wheel has only ptxas), all under nvidia/cu13.
"$venv/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-cccl nvidia-cublas \
    nvidia-curand
root=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
[ -x "$root/bin/nvcc" ] || { echo "check_cuda_build: no nvcc in $root/bin" >&2; exit 1; }
if [ -d "$root/lib" ] && [ ! -e "$root/lib64" ]; then ln -s lib "$root/lib64"; fi
for l in "$root"/lib/*.so.*; do
    base=${l%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$l")" "$base"
done
export CUDA_ROOT=$(realpath "$root") CUDA_PATH=$(realpath "$root") CUDA_HOME=$(realpath "$root")
export PATH="$CUDA_ROOT/bin:$PATH" LIBRARY_PATH="$CUDA_ROOT/lib64:${LIBRARY_PATH:-}"
export CUDA_COMPUTE_CAP=${1:-80}
# cudarc 0.19 knows toolkits up to 13.4 and refuses the wheel's 13.5 by name; its 13.4 API
# bindings are what it loads at run time.
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
nvcc --version | tail -2
cargo build --release --features cuda --lib
echo "check_cuda_build: the cuda feature compiles (compute capability $CUDA_COMPUTE_CAP)"
