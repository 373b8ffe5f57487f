"""Our AVX2 CPU kernels for decode-size matmuls with int4 (group 32) and int8 (per channel) weights:
activations rounded to int8 per block of 32, integer dot products with the weight's values, float
accumulation (llama.cpp's approach). `vireo.kernels.cpu_quant` holds the weights they read.

Built once per machine with `torch.utils.cpp_extension.load` under the engine's home
(`torch_extensions/`, or $TORCH_EXTENSIONS_DIR); when the compiler or AVX2 is missing, or the engine
setting `cpu_int8_kernels` is off (VIREO_CPU_INT8_KERNELS=0; `configure`), `load_kernel` returns None
(logged once) and callers keep PyTorch's int4/int8 kernels.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import torch

log = logging.getLogger(__name__)

GROUP = 32
BUILD_LOCK_STALE_S = 300  # a build takes about a minute; a lock older than this was left by a killed one
SOURCE = Path(__file__).parent / "csrc" / "cpu_int8dot.cpp"


_enabled = True
_build_root: Path | None = None


def configure(enabled: bool = True, build_root: Path | None = None) -> None:
    """The engine's settings (`EngineConfig.cpu_int8_kernels`, its home) for this process's weights:
    whether to use these kernels, and where to build them (default: ~/.cache/vireo/torch_extensions,
    or $TORCH_EXTENSIONS_DIR)."""
    global _enabled, _build_root
    _enabled, _build_root = enabled, build_root
    load_kernel.cache_clear()


@contextlib.contextmanager
def turned_off() -> Iterator[None]:
    """PyTorch's kernels within (tests and benchmarks that measure them)."""
    before = _enabled, _build_root
    configure(False, _build_root)
    try:
        yield
    finally:
        configure(*before)


@functools.cache
def load_kernel() -> ModuleType | None:
    """The compiled extension, or None (reason logged once)."""
    if not _enabled:
        log.info("our cpu int8 kernels are turned off (cpu_int8_kernels); using PyTorch's int4/int8 kernels")
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        log.info("our cpu int8 kernels need AVX2 (cpu capability %s); using PyTorch's int4/int8 kernels", capability)
        return None
    build_dir = os.environ.get("TORCH_EXTENSIONS_DIR") or str(
        (_build_root or Path.home() / ".cache" / "vireo") / "torch_extensions"
    )
    try:
        from torch.utils.cpp_extension import load

        os.makedirs(build_dir, exist_ok=True)
        clear_stale_lock(Path(build_dir))
        return load(
            name="vireo_cpu_int8dot",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-mavx2", "-mfma"],
            build_directory=build_dir,
            verbose=False,
        )
    except Exception as exc:  # compiler missing or build failure: fall back, say why once
        log.warning("cpu int8dot kernel could not be built (%s); using PyTorch's int4/int8 kernels", exc)
        return None


def clear_stale_lock(build_dir: Path, older_than_s: float = BUILD_LOCK_STALE_S) -> None:
    """Remove the build's lock file if a process killed mid-build left it: `load` would wait on it forever."""
    lock = build_dir / "lock"
    try:
        if time.time() - lock.stat().st_mtime > older_than_s:
            log.warning("removing a stale build lock %s (a build was killed?)", lock)
            lock.unlink(missing_ok=True)
    except FileNotFoundError:
        pass


def int4_mm(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> torch.Tensor:
    """x [M, K] @ W.T -> float32 [M, N]; W int4 group 32: packed uint8 [N, K/2] (byte j of a group holds
    value j low, value j + 16 high), w = q * scale + minimum with float32 [N, K/32] scale and minimum."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    return kernel.int4_mm(x, packed, scale, minimum)


def int8_mm(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [M, K] @ W.T -> float32 [M, N]; W int8 [N, K] with one scale per output channel."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    return kernel.int8_mm(x, qweight, scale)


def pack_groups(q: torch.Tensor) -> torch.Tensor:
    """Values 0..15 [N, K] as the kernel reads them: uint8 [N, K/2], in each group of 32 byte j holding
    value j (low nibble) and value j + 16 (high nibble)."""
    n, k = q.shape
    g = q.to(torch.uint8).view(n, k // GROUP, GROUP)
    return (g[..., :16] | (g[..., 16:] << 4)).reshape(n, k // 2).contiguous()


def unpack_groups(packed: torch.Tensor) -> torch.Tensor:
    """`pack_groups` undone: uint8 values 0..15 [N, K]."""
    n, half = packed.shape
    p = packed.view(n, half // 16, 16)
    return torch.cat([p & 0x0F, p >> 4], dim=-1).reshape(n, half * 2)


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """x rounded as the kernel rounds it: int8 per block of 32, scale max|x|/127 (for references)."""
    m, k = x.shape
    b = x.double().view(m, k // GROUP, GROUP)
    s = b.abs().amax(-1, keepdim=True) / 127
    q = torch.where(s > 0, torch.round(b / torch.where(s > 0, s, 1)), 0)
    return (q * s).view(m, k)
