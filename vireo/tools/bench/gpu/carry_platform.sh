#!/usr/bin/env bash
# Fills _gpu/ (git-ignored) with what platform_stack.sh needs on a lent GPU whose image lacks the
# platform's packages and redis-server: run here, then `run` with carry ["_gpu"].
#   _gpu/wheels: the platform's wheels for the image's CPython 3.12 (less what the image has), and
#                Vireo's own wheel for its entry points (the apps)
#   _gpu/redis:  Debian's redis-server and what it links
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PY=${PY:-$HOME/.cache/vireo/venv/bin/python}
rm -rf _gpu && mkdir -p _gpu/wheels _gpu/redis
"$PY" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_31_x86_64 -c constraints.txt -d _gpu/wheels \
  fastapi uvicorn sse-starlette python-multipart pydantic pydantic-settings 'celery[redis]' redis \
  python-json-logger llguidance filelock pyyaml psutil gguf hiredis aiohttp
# the image has these (httpx, typer and torch need them): keep its own
rm -f _gpu/wheels/{click,typing_extensions,packaging,idna,anyio,h11,numpy,tqdm,requests}-*.whl
"$PY" -m pip wheel -q --no-deps . -w _gpu/wheels
(cd _gpu/redis && apt-get download redis-server redis-tools libjemalloc2 liblzf1)
du -sh _gpu
