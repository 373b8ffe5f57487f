"""Kernel tests run Triton on CPU tensors through its interpreter.

`TRITON_INTERPRET=1` must be set before a kernel module is imported, because `triton.jit`
decides then between compiling and interpreting; modules imported earlier are reloaded (those
that others import from first).
"""

import importlib
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

_KERNEL_MODULES = [
    "vireo.kernels.split_k",
    "vireo.kernels.dense_gemv",
    "vireo.kernels.quant_gemv",
    "vireo.kernels.gemv_kmajor",
    "vireo.kernels.quant_mma",
    "vireo.kernels.quant",
    "vireo.kernels.attention",
    "vireo.kernels.flash_prefill",
    "vireo.kernels.fused",
]
for _name in _KERNEL_MODULES:
    if _name in sys.modules:
        importlib.reload(sys.modules[_name])

from vireo.kernels.dispatch import triton_forced  # noqa: E402


@pytest.fixture
def triton_on():
    """Run the Triton kernels (interpreted) instead of the torch references."""
    with triton_forced():
        yield


@pytest.fixture(autouse=True)
def _seed(request):
    torch.manual_seed(hash(request.node.name) % (2**31))
