"""The ranks of a tensor-parallel engine: rank 0 runs in the engine's process, schedules and samples;
ranks 1..N-1 are processes of their own that hold their shards and run every step rank 0 sends them.

Rank 0 sends each step as host integers (`StepPlan`) down a pipe to every other rank; each rank then
builds the same tensors and runs the same forward, so their collectives pair up, in the order rank 0
ran them. The token ids of a step's leading decode rows, queued on the device (overlapped decoding),
follow as a broadcast; the plan holds the rest.
A rank whose step fails exits; its peers' next collective then fails or times out, and the engine
fails the step's requests (`StepLoop`).
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
from pathlib import Path

import torch

from vireo.inference.engine_config import EngineConfig
from vireo.inference.model_config import read_model_config
from vireo.inference.native.kv_budget import kv_cache_slots
from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.native.parallel.group import TensorParallel, join, leave, rank_device
from vireo.inference.native.parallel.sharding import check_shardable
from vireo.inference.native.scheduling.batch import ScheduledSeq
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.worker.model_runner import ModelRunner, StepInputs, StepPlan, device_rows_of, flat_order

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 1800  # a rank loading a large model from a slow disk


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeerRanks:
    """The processes of ranks 1..size-1 and a pipe to each."""

    def __init__(self, config: EngineConfig, model_path: Path, context_length: int):
        self.size = config.tensor_parallel_size
        self.address = f"127.0.0.1:{_free_port()}"
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        self.conns, self.processes = [], []
        for rank in range(1, self.size):
            here, there = context.Pipe()
            process = context.Process(
                target=serve_rank,
                args=(rank, self.address, config, model_path, context_length, there),
                name=f"vireo-tp-rank{rank}",
                daemon=True,  # ended with the engine's process; also ends when its pipe closes
            )
            process.start()
            there.close()
            self.conns.append(here)
            self.processes.append(process)

    def wait_ready(self) -> None:
        """Return once every rank has loaded its shard and its KV cache; raise what one failed with."""
        for rank, conn in enumerate(self.conns, start=1):
            if not conn.poll(READY_TIMEOUT_S):
                raise RuntimeError(f"tensor-parallel rank {rank} did not load its shard in {READY_TIMEOUT_S} s")
            kind, payload = conn.recv()
            if kind == "failed":
                raise RuntimeError(f"tensor-parallel rank {rank} failed to start: {payload}")

    def send(self, message: tuple) -> None:
        for rank, (conn, process) in enumerate(zip(self.conns, self.processes), start=1):
            if not process.is_alive():
                raise RuntimeError(f"tensor-parallel rank {rank} exited (code {process.exitcode})")
            conn.send(message)

    def stop(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop",))
                conn.close()
            except OSError:  # that rank is gone already
                pass
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)


class ShardedRunner(ModelRunner):
    """Rank 0's runner: each call that runs the model is first sent to the other ranks, which run it too.
    One lock keeps a call's message and its collectives together (scores come from another thread)."""

    def __init__(self, peers: PeerRanks, model: LlamaModel, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        assert model.tp is not None, "a sharded runner runs a sharded model"
        self.peers, self.tp = peers, model.tp
        self._lock = threading.Lock()

    def prepare_cache(self, blocks: BlockManager) -> None:
        high_water, copies = blocks.high_water, blocks.take_pending_copies()
        with self._lock:
            self.peers.send(("cache", high_water, copies))
            self.zero_new_blocks(high_water)
            self.copy_blocks(copies)

    def run(
        self, items: list[ScheduledSeq], input_ids: torch.Tensor | None = None
    ) -> tuple[StepInputs, torch.Tensor | None]:
        plan = self.plan(items, device_rows_of(input_ids))
        with self._lock:
            self.peers.send(("run", plan))
            if input_ids is not None:
                self.tp.broadcast(input_ids)
            inputs = self.inputs(plan, input_ids, flat_order(items))
            return inputs, self.run_inputs(inputs)

    def capture_graphs(self) -> None:
        """Left to the first decode step: every rank captures its graphs then, together (a capture on rank 0
        alone would wait for the other ranks' part of each collective)."""

    def run_plan(self, plan: StepPlan) -> torch.Tensor | None:
        with self._lock:
            self.peers.send(("run", plan))
            return self.run_inputs(self.inputs(plan))

    def forward_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        with self._lock:
            self.peers.send(("score", input_ids.cpu()))
            return super().forward_logits(input_ids)

    def close(self) -> None:
        """Stop the other ranks and leave the group (the engine's shutdown)."""
        self.peers.stop()
        leave()


def start_ranks(config: EngineConfig, model_path: Path, context_length: int) -> ShardedRunner:
    """Start ranks 1..N-1, load rank 0's shard here and return its runner once every rank is ready;
    whatever fails stops the ranks already started."""
    check_shardable(read_model_config(model_path), config.tensor_parallel_size)  # before any process starts
    peers = PeerRanks(config, model_path, context_length)
    try:
        tp = join(0, peers.size, peers.address, rank_device(config.device, 0))
        model, num_blocks = load_rank(config, model_path, tp)
        runner = ShardedRunner(
            peers, model, num_blocks, config.block_size, tp.device, config.cuda_graphs, config.max_batch, context_length
        )
        peers.wait_ready()
        return runner
    except BaseException:
        peers.stop()
        leave()
        raise


def load_rank(config: EngineConfig, model_path: Path, tp: TensorParallel) -> tuple[LlamaModel, int]:
    """This rank's shard of the model and the KV-cache blocks every rank can hold (the same on all)."""
    from vireo.inference.local import torch_dtype

    model = LlamaModel.from_pretrained(
        model_path,
        torch_dtype(config.dtype),
        config.max_batch,
        tp.device,
        quantization=config.quantization,
        dense_gemv=config.dense_gemv,
        tp=tp,
    )
    slots = tp.min_int(kv_cache_slots(config, model.shape, torch_dtype(config.kv_cache_dtype), model.device))
    return model, max(1, slots // config.block_size)


def serve_rank(rank: int, address: str, config: EngineConfig, model_path: Path, context_length: int, conn) -> None:
    """A rank's process: join the group, load the shard, then run what rank 0 sends until told to stop."""
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        tp = join(rank, config.tensor_parallel_size, address, rank_device(config.device, rank))
        model, num_blocks = load_rank(config, model_path, tp)
        from vireo.inference.local import torch_dtype

        runner = ModelRunner(
            model,
            num_blocks,
            config.block_size,
            tp.device,
            config.cuda_graphs,
            config.max_batch,
            context_length,
            torch_dtype(config.kv_cache_dtype),
        )
    except Exception as exc:  # told to rank 0, which raises it where the engine is built
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    try:
        with torch.inference_mode():
            _serve_steps(runner, tp, conn)
    finally:
        leave()


def _serve_steps(runner: ModelRunner, tp: TensorParallel, conn) -> None:
    while True:
        try:
            message = conn.recv()
        except EOFError:  # rank 0's process is gone
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "cache":
            runner.zero_new_blocks(message[1])
            runner.copy_blocks(message[2])
        elif kind == "run":
            plan = message[1]
            input_ids = None
            if plan.device_rows:
                input_ids = tp.broadcast(torch.empty(plan.device_rows, dtype=torch.long, device=tp.device))
            runner.run_inputs(runner.inputs(plan, input_ids))
        elif kind == "score":
            runner.forward_logits(message[1].to(tp.device))
        else:
            raise ValueError(f"unknown message for a tensor-parallel rank: {kind!r}")
