#!/usr/bin/env bash
# The GPU lane, one command for a bare GPU machine (the device tool), within 8 minutes:
#   here:  bash scripts/fetch_gpu_wheels.sh        (wheels the machine lacks, into .whl/)
#   there: bash scripts/gpu_check.sh               (carry .whl; results in $OUT or runs/gpu)
# It runs the GPU tests (pytest -m gpu), then benchmarks/gpu.py: batched augmentation
# images/s against kornia on the same GPU, fine-tuning images/s at 224 px with mixed precision
# and channels_last against a plain PyTorch loop of the same model and data, generator
# training steps/s. One table: gpu.md (and gpu.json) in the output folder. CI never runs this.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/gpu}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tee "$out/gpu-tests.log" \
  || status=1
timeout 420 python3 benchmarks/gpu.py --device cuda --out "$out" 2>&1 | tee "$out/gpu-bench.log" \
  || status=1
exit $status
