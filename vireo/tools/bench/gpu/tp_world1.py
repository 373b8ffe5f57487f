"""On one GPU: the tensor-parallel code path with NCCL at world size 1 (a real NCCL communicator), eager and
replayed from CUDA graphs, against the same model without a group. Prints max |logit diff| per path.

    PYTHONPATH=. python3 vireo/tools/bench/gpu/tp_world1.py
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import torch

MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
os.environ.update(MULTICAST_OFF)

from vireo.inference.native.models.llama import LlamaModel  # noqa: E402
from vireo.inference.native.parallel.group import join, leave  # noqa: E402
from vireo.inference.native.worker.model_runner import ModelRunner, PlannedSeq, StepPlan  # noqa: E402
from vireo.inference.registry import ModelRegistry  # noqa: E402


def main() -> None:
    cuda = torch.cuda.is_available()  # without a GPU: gloo on the CPU, a tiny shape (a dry run of the script)
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    home = Path(tempfile.mkdtemp())
    folder = ModelRegistry(home).resolve("random:llama-1b" if cuda else "random:tiny").path
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tp = join(0, 1, f"127.0.0.1:{port}", device)
    plain = LlamaModel.from_pretrained(folder, dtype, 8, device)
    sharded = LlamaModel.from_pretrained(folder, dtype, 8, device, tp=tp)
    results = {}
    with torch.inference_mode():
        for label, graphs in (("eager", False), ("cuda_graphs", True)):
            outs = []
            for model in (plain, sharded):
                runner = ModelRunner(model, 64, 16, device, cuda_graphs=graphs, max_batch=8, max_context=1024)
                runner.zero_new_blocks(64)
                prompt = StepPlan(
                    [PlannedSeq(0, 32, 0, [0, 1], True), PlannedSeq(0, 32, 0, [2, 3], True)],
                    0,
                    list(range(100, 132)) * 2,
                )
                runner.run_inputs(runner.inputs(prompt))
                logits = []
                for step in range(4):  # decode steps: graph replays where graphs are on
                    seqs = [PlannedSeq(32 + step, 1, 0, [0, 1, 4], True), PlannedSeq(32 + step, 1, 0, [2, 3, 5], True)]
                    plan = StepPlan(seqs, 2, [7 + step, 9 + step])
                    step_logits = runner.run_inputs(runner.inputs(plan))
                    assert step_logits is not None  # both rows sample
                    logits.append(step_logits)
                outs.append(torch.stack(logits).float())
            results[label] = float((outs[0] - outs[1]).abs().max())
    leave()
    print(torch.cuda.get_device_name(0) if cuda else "cpu (gloo)", "world size 1:", results)


if __name__ == "__main__":
    main()
