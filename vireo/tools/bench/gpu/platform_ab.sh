#!/usr/bin/env bash
# Several forms of the platform in one device call, each measured against its own engine-alone baseline
# by platform_stack.sh: code (a checkout), hiredis on or off, API and client process counts, levels.
# A device call is the only same-machine comparison there is (a machine goes back 30 s after a call).
# Usage there, from the checkout, with _gpu carried (carry_platform.sh) and older code exported into it:
#   bash vireo/tools/bench/gpu/platform_ab.sh NAME:CODE_DIR:HIREDIS:API_PROCS:CLIENT_PROCS:LEVELS[:HTTP_CLIENT[:ENV]] ...
# e.g.  before:_gpu/base:0:8:8:1,32,64:httpx  after:.:1:8:8:1,32,64  (HTTP_CLIENT: aiohttp unless named)
#       window:.:1:8:8:32,64:aiohttp:VIREO_ADMISSION_WINDOW_MS=20+VIREO_MAX_BATCH=64  (ENV: settings for both paths)
# Each variant writes $OUT/NAME/platform-h200.json; a variant that fails does not stop the others.
set -uo pipefail
ROOT=$PWD
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name --format=csv,noheader
# what else the host and the card do while variants run (the levels' started_at place them in it): load,
# the busiest processes over a second, the card's clocks, power and use, every 2-3 s
mkdir -p "$OUT"
(while sleep 2; do
  echo "--- $(date -u +%T.%N | cut -c1-12) load $(cut -d' ' -f1-3 /proc/loadavg)"
  nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw,utilization.gpu --format=csv,noheader
  top -b -n 2 -d 1 -w 130 | awk '/^top -/ { frame++ } frame == 2' | sed -n '7,13p'  # the second frame: the last second
done) >"$OUT/host-sampler.log" 2>&1 &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT
for spec in "$@"; do
  IFS=: read -r name code hiredis api clients levels http settings <<<"$spec"
  http=${http:-aiohttp}
  echo "=== $name: code $code, hiredis $hiredis, $api API processes, $clients client processes ($http), levels $levels," \
    "settings ${settings:-as set} ($(date -u +%T))"
  (cd "$code" && for pair in ${settings//+/ }; do export "${pair?}"; done && CARRY=$ROOT/_gpu NO_HIREDIS=$((1 - hiredis)) VIREO_API_WORKERS=$api CLIENT_PROCESSES=$clients \
    HTTP_CLIENT=$http LEVELS=$levels OUT=$OUT/$name bash "$ROOT/vireo/tools/bench/gpu/platform_stack.sh") ||
    echo "=== $name failed"
  pkill -f "vireo.cli serve" 2>/dev/null; sleep 2
done
