"""One engine's tensor-parallel group: its rank, its size and the collectives a sharded model calls.

The collectives are torch.distributed's (NCCL between GPUs, gloo between CPU processes); the group is
the process's default one, so a process serves at most one tensor-parallel engine. Host messages (what
a step runs) travel apart from it, over a pipe (`ranks.py`): a rank waiting for work never sits in a
collective, so the collectives keep a short timeout.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

COLLECTIVE_TIMEOUT = timedelta(minutes=5)  # a step's collectives; model loading happens before joining


class TensorParallel:
    """This process's place in the group and the collectives over it."""

    def __init__(self, rank: int, size: int, device: torch.device):
        self.rank, self.size, self.device = rank, size, device

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        """Sum `x` over the ranks, in place (the row-parallel projections' partial sums)."""
        dist.all_reduce(x)
        return x

    def gather_last_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's `x` side by side along the last axis, in rank order (the LM head's vocabulary shards)."""
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=-1)

    def broadcast(self, x: torch.Tensor) -> torch.Tensor:
        """Rank 0's `x` on every rank, in place (device token ids a step was queued with)."""
        dist.broadcast(x, src=0)
        return x

    def min_int(self, value: int) -> int:
        """The smallest of the ranks' `value` (the KV-cache blocks every rank can hold)."""
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())


def rank_device(device: str | torch.device, rank: int) -> torch.device:
    """Rank `rank`'s device: the rank-th GPU on CUDA, the CPU otherwise."""
    device = torch.device(device)
    return torch.device("cuda", rank) if device.type == "cuda" else device


def join(rank: int, size: int, address: str, device: torch.device) -> TensorParallel:
    """Join the group at `address` (host:port of rank 0's store); NCCL on CUDA, gloo on CPU."""
    if dist.is_initialized():
        raise RuntimeError("this process already belongs to a process group: one tensor-parallel engine per process")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(
            "nccl",
            init_method=f"tcp://{address}",
            rank=rank,
            world_size=size,
            timeout=COLLECTIVE_TIMEOUT,
            device_id=device,
        )
    else:
        dist.init_process_group(
            "gloo", init_method=f"tcp://{address}", rank=rank, world_size=size, timeout=COLLECTIVE_TIMEOUT
        )
    return TensorParallel(rank, size, device)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
