"""GPTQ (Frantar et al. 2022): quantize a linear layer column by column, pushing each column's
rounding error onto the columns not yet quantized, weighted by the inverse input Hessian.

Blocked as in the paper's reference: errors propagate inside a block of 128 columns at once
and to the rest of the matrix once per block. Groups start where a column index is a multiple
of the group size and take their scale/zero point from the already-updated weights.
"""

from __future__ import annotations

import contextlib

import torch

from vireo.kernels.qweight import INT8_MAX, Int4Weight, Int8Weight, int4_round, int4_scale_zero, pack_int4_weight


class HessianAccumulator:
    """Running H = 2/n * sum(x x^T) over the inputs x [tokens, K] a layer sees.

    Accumulated in float32, as the reference does (the inverse is taken in float64): float64
    products cost several times more on CPU, and down_proj's K x K is the bulk of GPTQ's time."""

    def __init__(self, features: int):
        self.hessian = torch.zeros(features, features, dtype=torch.float32)
        self.count = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().float().cpu()
        tokens = x.shape[0]
        self.hessian *= self.count / (self.count + tokens)
        self.count += tokens
        x = x * (2.0 / self.count) ** 0.5
        self.hessian += x.t() @ x


def _inverse_hessian_factor(hessian: torch.Tensor, damp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper Cholesky factor of H^-1 after damping (dead inputs get unit diagonal), and the
    boolean mask of those dead inputs."""
    h = hessian.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    h += torch.eye(h.shape[0], dtype=h.dtype) * damp * torch.diag(h).mean()
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(inverse, upper=True), dead


@contextlib.contextmanager
def _one_thread():
    """The column loop is thousands of small ops: thread hand-offs would cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    group_size: int = 128,
    block_size: int = 128,
    damp: float = 0.01,
) -> Int4Weight | Int8Weight:
    """GPTQ-quantize an nn.Linear weight [N, K] given its input Hessian [K, K]."""
    hinv, dead = _inverse_hessian_factor(hessian.double(), damp)
    hinv = hinv.float()  # the inverse in float64; the sweep in float32, as the reference does
    w = weight.detach().float().cpu().clone()
    w[:, dead] = 0
    with _one_thread():
        return _gptq_sweep(w, hinv, bits, group_size, block_size)


def _gptq_sweep(
    w: torch.Tensor, hinv: torch.Tensor, bits: int, group_size: int, block_size: int
) -> Int4Weight | Int8Weight:
    n, k = w.shape
    if bits == 4 and block_size % group_size:
        block_size = group_size * max(1, block_size // group_size)
    grid = torch.zeros_like(w)
    groups = -(-k // group_size)
    scales, zeros = torch.zeros(n, groups, dtype=w.dtype), torch.zeros(n, groups, dtype=w.dtype)
    row_scale = (w.abs().amax(dim=1) / INT8_MAX).clamp(min=1e-8)
    for start in range(0, k, block_size):
        end = min(start + block_size, k)
        block = w[:, start:end].clone()
        errors = torch.zeros_like(block)
        for i in range(end - start):
            col = start + i
            if bits == 4 and col % group_size == 0:
                g = col // group_size
                scales[:, g], zeros[:, g] = int4_scale_zero(block[:, i : i + group_size])
            column = block[:, i]
            if bits == 4:
                g = col // group_size
                q = int4_round(column, scales[:, g], zeros[:, g])
                dequant = (q - zeros[:, g]) * scales[:, g]
            else:
                q = torch.clamp(torch.round(column / row_scale), -INT8_MAX, INT8_MAX)
                dequant = q * row_scale
            grid[:, col] = q
            err = (column - dequant) / hinv[col, col]
            block[:, i:].addr_(err, hinv[col, col:end], alpha=-1)
            errors[:, i] = err
        w[:, end:] -= errors @ hinv[start:end, end:]
    if bits == 4:
        return pack_int4_weight(grid, scales.float(), zeros.float(), group_size)
    return Int8Weight(grid.t().contiguous().to(torch.int8), row_scale.float())
