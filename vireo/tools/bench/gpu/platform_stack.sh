#!/usr/bin/env bash
# The whole stack on a lent GPU (issue #16): Redis, the API and a worker on CUDA, then
# `vireo bench platform --engine-ratio` (REST jobs against the native engine alone, same weights).
#
# The GPU image lacks the platform's packages and redis-server (../shared/GPU.md): carry wheels in
# _gpu_wheels/ (`pip download` for cp312 manylinux, plus `pip wheel --no-deps .` for Vireo's entry
# points) and the Debian packages in _gpu_redis/ (`apt-get download redis-server redis-tools
# libjemalloc2 liblzf1`). Usage there, from the checkout: bash vireo/tools/bench/gpu/platform_stack.sh
set -euo pipefail
MODEL=${VIREO_MODEL:-random:llama-8b}
LEVELS=${LEVELS:-1,8,32,64}
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/site /tmp/redis "$OUT"
python3 -m pip install -q --upgrade --no-index --no-deps --target /tmp/site _gpu_wheels/*.whl
rm -rf /tmp/site/vireo  # keep the wheel's entry points (the apps), run the checkout's code
for deb in _gpu_redis/*.deb; do dpkg -x "$deb" /tmp/redis; done
export LD_LIBRARY_PATH=/tmp/redis/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
/tmp/redis/usr/bin/redis-cli ping >/dev/null 2>&1 ||
  /tmp/redis/usr/bin/redis-server --port 6379 --daemonize yes --save "" --appendonly no --dir /tmp
for _ in $(seq 50); do /tmp/redis/usr/bin/redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export VIREO_MODEL=$MODEL VIREO_HOME=/tmp/vireo-home VIREO_ENGINE=native VIREO_LOG_LEVEL=warning
export VIREO_BENCH_REDIS_URL=redis://127.0.0.1:6379/1
python3 -c "import torch; print(torch.cuda.get_device_name(), torch.__version__)"
python3 -m vireo.cli bench platform --engine-ratio --concurrency "$LEVELS" --rounds "${ROUNDS:-2}" \
  --out "$OUT/platform-h200.json"
python3 - "$OUT/platform-h200.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("card:", d["machine"].get("gpu"), "| model:", d["engine"]["model"])
print(f"{'clients':>7} {'engine tok/s':>12} {'platform tok/s':>14} {'ratio':>6} {'TTFT eng ms':>11} {'TTFT plat ms':>12}")
for level in d["levels"]:
    e, p = level["engine"], level["platform"]
    print(f"{level['concurrency']:>7} {e['tok_s']:>12} {p['tok_s']:>14} {level['platform_over_engine_tok_s']:>6} "
          f"{e['ttft_p50_ms']:>11} {p['ttft_p50_ms']:>12}")
print("meets goals:", d["meets_goals"])
EOF
