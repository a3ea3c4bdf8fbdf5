#!/usr/bin/env bash
# Targets for the transfer benchmark without a second machine: pseudo-devices of this CPU, each a
# different cost structure and its own hardware profile (nnenergy.measure.hardware.runtime_suffix):
#   isa-avx2  ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's AVX2 kernels on an AVX-512 CPU)
#   eigen     TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's Eigen kernels instead of oneDNN)
#   1c        taskset -c 0 (one core)
# Each gets what the Xeon got (../shared/xeon-2026-12-02): the external set, the first generated
# architectures of `space` (the bring-up's own sweep, up to $GEN_MIN minutes), the keras.applications
# points of `space` (shuffled, up to $APPS_MIN minutes) and the calibration panel. Resumable: rerun it.
#   scripts/measure_pseudo_devices.sh [device...]      (default: default isa-avx2 eigen 1c; `default` is this CPU as it is)
# Stop it by creating $STOP_FILE (default /tmp/nnenergy-measure.stop): it stops after the current step.
set -uo pipefail
cd "${NNENERGY_REPO:-$(dirname "$0")/..}"
STOP_FILE="${STOP_FILE:-/tmp/nnenergy-measure.stop}"
PY="${PYTHON:-$PWD/.venv/bin/python}"
GEN_MIN="${GEN_MIN:-8}"; APPS_MIN="${APPS_MIN:-7}"
EXTERNAL_DIR="${EXTERNAL_DIR:-/tmp/nnenergy-external}"
export PYTHONPATH="${NNENERGY_SRC:-$PWD/src}${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=3
grep -m1 "model name" /proc/cpuinfo
[ -n "$(ls "$EXTERNAL_DIR"/*.keras 2>/dev/null)" ] || "$PY" benchmarks/external_models.py --write "$EXTERNAL_DIR" --sizes 112,160
files="$(ls "$EXTERNAL_DIR"/*.keras | paste -sd,)"

run() {  # device, then the command; the device sets the environment and the CPU set
  local dev="$1"; shift
  [ -e "$STOP_FILE" ] && return 1
  case "$dev" in
    default) "$@" ;;
    isa-avx2) env ONEDNN_MAX_CPU_ISA=AVX2 "$@" ;;
    eigen) env TF_ENABLE_ONEDNN_OPTS=0 "$@" ;;
    1c) taskset -c 0 "$@" ;;
    *) echo "unknown pseudo-device $dev"; return 1 ;;
  esac
}

for dev in "${@:-default isa-avx2 eigen 1c}"; do
  for d in $dev; do
    prof="$(run "$d" "$PY" -c 'from nnenergy.measure.backends import profile_name; print(profile_name())')" || exit 0
    echo "== $(date -u +%FT%TZ) $d -> profile $prof"
    run "$d" "$PY" -m nnenergy.apps.measure sweep=external "sweep.model_files=[$files]" \
      "sweep.output_dir=data/$prof/external" 2>&1 | tr '\r' '\n' | grep -v "config/s" | tail -2
    run "$d" "$PY" -m nnenergy.apps.measure sweep=space 'sweep.architectures=[]' 'sweep.generated.seeds=[0,150]' \
      'sweep.generated.variant_seeds=[0,0]' "sweep.max_minutes=$GEN_MIN" "sweep.output_dir=data/$prof/space_gen" \
      2>&1 | tr '\r' '\n' | grep -v "config/s" | tail -2
    run "$d" "$PY" -m nnenergy.apps.measure sweep=space 'sweep.generated.seeds=[0,0]' 'sweep.generated.variant_seeds=[0,0]' \
      sweep.shuffle=true "sweep.max_minutes=$APPS_MIN" "sweep.output_dir=data/$prof/space_apps" \
      2>&1 | tr '\r' '\n' | grep -v "config/s" | tail -2
    [ -e "data/$prof/panel.json" ] || run "$d" "$PY" -m nnenergy.cli calibrate --record 2>&1 | tail -1
  done
done
echo "== $(date -u +%FT%TZ) done"
