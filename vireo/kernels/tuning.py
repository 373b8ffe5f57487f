"""Tuned kernel choices kept as data, one JSON file per device (`configs/device_name=<name>.json`,
as vLLM keeps its tuned MoE configs), instead of chains of `if`s in the launchers.

A file holds plain values (thresholds, tile sizes) and rule lists: `[{"when": {...}, "use": X}]`
read top down, the first rule whose bounds all hold giving X. A device without a file of its own
uses the H200's, where every entry was measured. The files are read once per device.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch

CONFIGS = Path(__file__).with_name("configs")
DEFAULT_DEVICE = "NVIDIA H200"


def config_file(device_name: str) -> Path:
    return CONFIGS / f"device_name={device_name.replace(' ', '_')}.json"


@lru_cache(maxsize=None)
def _table(device_name: str) -> dict:
    path = config_file(device_name)
    if not path.exists():
        path = config_file(DEFAULT_DEVICE)
    return json.loads(path.read_text())


@lru_cache(maxsize=None)
def _device_name(device: torch.device) -> str:
    if device.type != "cuda":
        return DEFAULT_DEVICE  # the Triton interpreter (tests): launch what the GPU would
    return torch.cuda.get_device_name(device)


def kernel_table(device: torch.device) -> dict:
    """The tuned table for `device`."""
    return _table(_device_name(device))


def pick(rules: list[dict], **dims: int):
    """The `use` of the first rule whose `when` bounds (`<dim>_max`, `<dim>_min`) all hold."""
    for rule in rules:
        if all(_holds(bound, limit, dims) for bound, limit in rule.get("when", {}).items()):
            return rule["use"]
    raise LookupError(f"no rule matches {dims}")


def _holds(bound: str, limit: int, dims: dict[str, int]) -> bool:
    name, _, side = bound.rpartition("_")
    return dims[name] <= limit if side == "max" else dims[name] >= limit
