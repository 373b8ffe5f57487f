#!/usr/bin/env bash
# The whole stack on a lent GPU (issue #16): Redis, the API and a worker on CUDA, then
# `vireo bench platform --engine-ratio` (REST jobs against the native engine alone, same weights).
#
# The GPU image lacks the platform's packages and redis-server (../shared/GPU.md): fill _gpu/ here with
# carry_platform.sh (wheels for the image's Python, Vireo's own wheel for its entry points, Debian's
# redis-server) and carry it (the device tool's `carry`: ["_gpu"]; the folder is git-ignored).
# Usage there, from the checkout: bash vireo/tools/bench/gpu/platform_stack.sh
# The worker's engine runs in a process of its own (the default on CUDA); IN_WORKER_TOO=1 runs the
# platform a second time with the engine inside the worker's process, in the same call.
# CARRY: where the carried folder is (default _gpu here; platform_ab.sh runs other checkouts with it);
# NO_HIREDIS=1 leaves hiredis out (redis-py then parses replies in Python, as before 2026-12-07);
# HTTP_CLIENT=httpx has the bench's REST clients speak httpx (as before 2026-12-07) instead of aiohttp.
set -euo pipefail
CARRY=${CARRY:-_gpu}
MODEL=${VIREO_MODEL:-random:llama-8b}
LEVELS=${LEVELS:-1,8,32,64}
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/site /tmp/redis "$OUT"
python3 -m pip install -q --upgrade --no-index --no-deps --target /tmp/site "$CARRY"/wheels/*.whl
rm -rf /tmp/site/vireo  # keep the wheel's entry points (the apps), run the checkout's code
[ "${NO_HIREDIS:-0}" = 1 ] && rm -rf /tmp/site/hiredis /tmp/site/hiredis-*
for deb in "$CARRY"/redis/*.deb; do dpkg -x "$deb" /tmp/redis; done
export LD_LIBRARY_PATH=/tmp/redis/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
/tmp/redis/usr/bin/redis-cli ping >/dev/null 2>&1 ||
  /tmp/redis/usr/bin/redis-server --port 6379 --daemonize yes --save "" --appendonly no --dir /tmp
for _ in $(seq 50); do /tmp/redis/usr/bin/redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export VIREO_MODEL=$MODEL VIREO_HOME=/tmp/vireo-home VIREO_ENGINE=native VIREO_LOG_LEVEL=warning
export VIREO_BENCH_REDIS_URL=redis://127.0.0.1:6379/1
python3 -c "import torch; print(torch.cuda.get_device_name(), torch.__version__)"
python3 -c "import celery, fastapi, uvicorn, sse_starlette, pydantic_settings, redis, llguidance, vireo.platform.api.app"
python3 -c "import redis.utils, subprocess; print('hiredis:', redis.utils.HIREDIS_AVAILABLE, '| code:', subprocess.run(['git', 'log', '-1', '--format=%h %s'], capture_output=True, text=True).stdout.strip()[:100])"
python3 -m vireo.cli bench platform --engine-ratio --concurrency "$LEVELS" --rounds "${ROUNDS:-2}" \
  --client-processes "${CLIENT_PROCESSES:-1}" --http-client "${HTTP_CLIENT:-aiohttp}" \
  $([ "${IN_WORKER_TOO:-0}" = 1 ] && echo --in-worker-too) --out "$OUT/platform-h200.json"
python3 - "$OUT/platform-h200.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("card:", d["machine"].get("card"), "| model:", d["engine"]["model"])
print(f"{'clients':>7} {'engine tok/s':>12} {'platform tok/s':>14} {'ratio':>6} {'TTFT eng ms':>11} {'TTFT plat ms':>12}")
for level in d["levels"]:
    e, p = level["engine"], level["platform"]
    print(f"{level['concurrency']:>7} {e['tok_s']:>12} {p['tok_s']:>14} {level['platform_over_engine_tok_s']:>6} "
          f"{e['ttft_p50_ms']:>11} {p['ttft_p50_ms']:>12}"
          + (f"  in-worker {level['platform_engine_in_worker']['tok_s']} ({level['engine_in_worker_over_engine_tok_s']})"
             if "platform_engine_in_worker" in level else ""))
    print(f"{'':>7} CPU cores busy: engine alone {e['cpu_cores_busy']}; platform {p['cpu_cores_busy']}")
    print(f"{'':>7} platform p50 ms: {p['where_time_goes_ms_p50']}")
    for path, numbers in (("engine alone", e), ("platform", p)):
        tally = numbers.get("steps", {})
        print(f"{'':>7} {path} steps {tally.get('steps_by_kind')} ms/step {tally.get('ms_per_step_by_kind')}"
              f" (p50, p90 {tally.get('ms_per_step_p50_p90_by_kind')}) triton compiles {numbers.get('triton_kernels_compiled')}")
print("meets goals:", d["meets_goals"])
EOF
