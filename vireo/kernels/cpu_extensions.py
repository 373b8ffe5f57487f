"""Our C++ CPU kernels (`csrc/<name>.cpp`, AVX2): built once per machine with
`torch.utils.cpp_extension.load`, each in its own folder of the machine's cache
(~/.cache/vireo/torch_extensions/<name>, or $TORCH_EXTENSIONS_DIR: compiled code belongs to the machine,
not to a model home), and loaded once per process.

Whether they are used is the engine setting `cpu_kernels` (VIREO_CPU_KERNELS; `configure`, called by
the local engines). `load` returns None, the reason logged once, when they are turned off, when the CPU
lacks AVX2, or when the build fails (no compiler): callers then keep PyTorch's own operators.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Iterator

import torch

log = logging.getLogger(__name__)

CSRC = Path(__file__).parent / "csrc"
FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"]

BUILD_ROOT = Path.home() / ".cache" / "vireo" / "torch_extensions"
POOL = "cpu_pool"  # the helper threads every other kernel's parallel loops run on (csrc/cpu_pool.cpp)

_enabled = True


def configure(enabled: bool = True) -> None:
    """The engine's setting (`EngineConfig.cpu_kernels`) for this process: whether to use our kernels."""
    global _enabled
    if enabled != _enabled:
        _enabled = enabled
        load.cache_clear()


@contextlib.contextmanager
def turned_off() -> Iterator[None]:
    """PyTorch's operators within (tests and benchmarks that measure them)."""
    before = _enabled
    configure(False)
    try:
        yield
    finally:
        configure(before)


def headers_digest() -> str:
    """A digest of the shared headers (`csrc/*.h`): torch rebuilds an extension when its sources or
    flags change, and sees no header, so the digest goes into the flags."""
    digest = hashlib.sha1()
    for header in sorted(CSRC.glob("*.h")):
        digest.update(header.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def load(name: str) -> ModuleType | None:
    """The compiled extension `csrc/<name>.cpp`, or None (reason logged once)."""
    if not _enabled:
        log.info("our CPU kernel %s is turned off (cpu_kernels); using PyTorch's operators", name)
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        log.info("our CPU kernel %s needs AVX2 (cpu capability %s); using PyTorch's operators", name, capability)
        return None
    build_dir = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or BUILD_ROOT) / name
    try:
        from filelock import FileLock
        from torch.utils.cpp_extension import load as build

        build_dir.mkdir(parents=True, exist_ok=True)
        # torch guards a build with a lock file that outlives a killed holder, and its waiters wait for
        # it forever (a worker SIGKILLed while loading froze every later worker). Our lock is an flock,
        # which the kernel drops when its holder dies; holding it, torch's file can only be a dead one's.
        with FileLock(str(build_dir / "vireo-build.lock")):
            (build_dir / "lock").unlink(missing_ok=True)
            module = build(
                name=f"vireo_{name}",
                sources=[str(CSRC / f"{name}.cpp")],
                extra_cflags=[*FLAGS, f"-DVIREO_CSRC_HEADERS={headers_digest()}"],
                build_directory=str(build_dir),
                verbose=False,
            )
    except Exception as exc:  # compiler missing or build failure: fall back, say why once
        log.warning("our CPU kernel %s could not be built (%s); using PyTorch's operators", name, exc)
        return None
    if name != POOL and hasattr(module, "use_pool"):  # its loops on the process's one pool (csrc/spin_pool.h)
        pool = load(POOL)
        if pool is not None:
            module.use_pool(pool.api())
    return module
