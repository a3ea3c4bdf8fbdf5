#!/usr/bin/env bash
# A measuring session on an otherwise idle machine: alternate the repeatability benchmark (a fresh
# process each time, so run-to-run drift is visible) with blocks of a resumable sweep.
#   scripts/measure_session.sh [minutes-per-sweep-block] [sweep] [extra Hydra overrides...]
# Stop it by creating $STOP_FILE (default /tmp/nnenergy-measure.stop): it stops after the current step.
# Runs the code of $NNENERGY_SRC (default: this checkout's src/) so that editing the checkout
# while it measures does not change the code mid-session.
set -uo pipefail
cd "$(dirname "$0")/.."
BLOCK_MIN="${1:-6}"; SWEEP="${2:-space}"; shift 2 2>/dev/null || true
STOP_FILE="${STOP_FILE:-/tmp/nnenergy-measure.stop}"
PY="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="${NNENERGY_SRC:-$PWD/src}${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=3
export NNENERGY_SESSION="${NNENERGY_SESSION:-$(date -u +%FT%H:%MZ)}"  # labels this session's repeatability runs
grep -m1 "model name" /proc/cpuinfo
while [ ! -e "$STOP_FILE" ]; do
  echo "== $(date -u +%FT%TZ) repeatability run"
  "$PY" benchmarks/repeatability.py || echo "repeatability run failed"
  [ -e "$STOP_FILE" ] && break
  echo "== $(date -u +%FT%TZ) sweep $SWEEP for up to $BLOCK_MIN min"
  out="$("$PY" -m nnenergy.apps.measure "sweep=$SWEEP" "sweep.max_minutes=$BLOCK_MIN" "$@" 2>&1 | tr '\r' '\n' | grep -v "config/s")"
  echo "$out" | tail -4
  echo "$out" | grep -q "^measured .*stopped at sweep.max_minutes" || break   # done, or an error
done
echo "== $(date -u +%FT%TZ) stopped"
