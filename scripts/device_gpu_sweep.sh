#!/usr/bin/env bash
# Measure the report's GPU grid (conf/sweep/paper_gpu.yaml) on a lent GPU machine: PyTorch with
# CUDA, no TensorFlow, no network. Keras runs on its torch backend; CodeCarbon reads the GPU's
# NVML energy counter. Here, once: `bash scripts/device_wheels.sh`. Then the device tool's run
# with carry [".whl"] and command `bash scripts/device_gpu_sweep.sh` (timeout_s 540). What comes
# back: $OUT/gpu.txt, $OUT/log.txt and $OUT/gpu_dataset.tgz (data/<gpu profile>/paper_gpu), the
# dataset packed whatever happens (an error or the time limit), since every row is on disk as
# soon as it is measured.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/nnenergy-out}
WORK=/tmp/nnenergy-data
mkdir -p "$OUT" "$WORK"
trap 'tar czf "$OUT/gpu_dataset.tgz" -C "$WORK" . 2>/dev/null' EXIT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "installing the carried wheels failed" | tee "$OUT/log.txt"; exit 1; }
export PYTHONPATH=/tmp/site KERAS_BACKEND=torch PYTHONUNBUFFERED=1 KINETO_LOG_LEVEL=5
nvidia-smi --query-gpu=name,driver_version,power.draw,clocks.sm --format=csv > "$OUT/gpu.txt" || true
PROFILE=$(python3 -c "import sys; sys.path.insert(0, 'src')
from nnenergy.measure.backends import profile_name; print(profile_name('gpu'))") || exit 1
# Stops after the block that crosses MAX_MINUTES; `timeout` is the hard stop well inside the call's limit.
timeout "${HARD_LIMIT_S:-450}" python3 scripts/measure_standalone.py sweep=paper_gpu \
  output_dir="$WORK/$PROFILE/paper_gpu" cache_dir=/tmp/nnenergy-cache max_minutes="${MAX_MINUTES:-5}" "$@" 2>&1 \
  | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
