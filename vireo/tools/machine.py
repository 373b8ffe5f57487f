"""Where a benchmark or eval ran: the one description every result JSON carries as "machine"."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from vireo.tools.paths import CHECKOUT

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def machine_info(packages: tuple[str, ...] = ("torch",), gpu: bool = False) -> dict:
    """CPU model and ISA, cores, host, Python, the named packages' versions (those installed), the
    CUDA card when `gpu`, and the load average at the start (a shared machine's neighbours show)."""
    cpuinfo = _read("/proc/cpuinfo").splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor() or "?",
    )
    flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for name in packages:
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            pass
    if gpu:
        import torch

        info["card"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    info["load_average_at_start"] = load_average()
    return info


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def source_commit() -> str:
    """The checkout's commit, or a note saying there is none (a copied tree, an installed wheel)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True)
    except OSError:
        return "unknown (no git)"
    return out.stdout.strip() or "unknown (no .git on the machine)"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
