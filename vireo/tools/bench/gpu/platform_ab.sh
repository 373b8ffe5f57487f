#!/usr/bin/env bash
# Several forms of the platform in one device call, each measured against its own engine-alone baseline
# by platform_stack.sh: code (a checkout), hiredis on or off, API and client process counts, levels.
# A device call is the only same-machine comparison there is (a machine goes back 30 s after a call).
# Usage there, from the checkout, with _gpu carried (carry_platform.sh) and older code exported into it:
#   bash vireo/tools/bench/gpu/platform_ab.sh NAME:CODE_DIR:HIREDIS:API_PROCS:CLIENT_PROCS:LEVELS[:HTTP_CLIENT] ...
# e.g.  before:_gpu/base:0:8:8:1,32,64:httpx  after:.:1:8:8:1,32,64  (HTTP_CLIENT: aiohttp unless named)
# Each variant writes $OUT/NAME/platform-h200.json; a variant that fails does not stop the others.
set -uo pipefail
ROOT=$PWD
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name --format=csv,noheader
for spec in "$@"; do
  IFS=: read -r name code hiredis api clients levels http <<<"$spec"
  http=${http:-aiohttp}
  echo "=== $name: code $code, hiredis $hiredis, $api API processes, $clients client processes ($http), levels $levels ($(date -u +%T))"
  (cd "$code" && CARRY=$ROOT/_gpu NO_HIREDIS=$((1 - hiredis)) VIREO_API_WORKERS=$api CLIENT_PROCESSES=$clients \
    HTTP_CLIENT=$http LEVELS=$levels OUT=$OUT/$name bash "$ROOT/vireo/tools/bench/gpu/platform_stack.sh") ||
    echo "=== $name failed"
  pkill -f "vireo.cli serve" 2>/dev/null; sleep 2
done
