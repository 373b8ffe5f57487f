"""The one machine description every benchmark and eval result carries."""

from __future__ import annotations

import os
from importlib.metadata import version

from vireo.tools.machine import machine_info


def test_it_names_this_machines_cpu_cores_and_the_installed_packages():
    info = machine_info(packages=("torch", "no-such-package-vireo"))
    model_names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    assert info["cpu"] == model_names[0]
    assert info["cores"] == os.cpu_count()
    assert info["torch"] == version("torch")
    assert "no-such-package-vireo" not in info  # not installed: left out, not made up
    assert len(info["load_average_at_start"]) == 3


def test_the_card_is_named_only_when_asked():
    assert "card" not in machine_info(packages=())
    import torch

    assert machine_info(packages=(), gpu=True)["card"] == (
        torch.cuda.get_device_name() if torch.cuda.is_available() else None
    )
