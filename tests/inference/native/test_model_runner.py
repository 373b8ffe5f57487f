"""The model runner's step tensors when a step's leading decodes take their token ids from the device
(a step queued behind one in flight, `overlap.py`) and the rest, prompts admitted into it, from the host."""

import pytest
import torch

from vireo.inference.api import SamplingParams
from vireo.inference.native.scheduling.batch import ScheduledSeq
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.worker.model_runner import WARM_UP_STEPS, ModelRunner


@pytest.fixture
def step(shared_model):
    """A runner and a mixed step: a decode of token 14 (position 3), then a 3-token prompt."""
    blocks, runner = BlockManager(4, 16), ModelRunner(shared_model, 4, 16)
    decode, prompt = Sequence("d", [11, 12, 13, 14], SamplingParams()), Sequence("p", [21, 22, 23], SamplingParams())
    for seq in (decode, prompt):
        seq.start(0)
        blocks.allocate(seq, len(seq) + 1)
    decode.advance(3)
    runner.prepare_cache(blocks)
    return runner, [ScheduledSeq(decode, 1), ScheduledSeq(prompt, 3)]


def test_device_ids_stand_for_the_leading_decodes_and_the_host_plans_the_rest(step):
    runner, items = step
    assert runner.plan(items, device_rows=1).ids == [21, 22, 23]
    host = runner.prepare(items)
    mixed = runner.prepare(items, torch.tensor([14]))
    assert mixed.input_ids.tolist() == host.input_ids.tolist() == [14, 21, 22, 23]
    assert torch.equal(mixed.positions, host.positions) and mixed.order == host.order == items
    assert torch.equal(runner.run_inputs(mixed), runner.run_inputs(host))


def test_device_ids_for_a_prompt_are_refused(step):
    runner, items = step
    with pytest.raises(ValueError, match="leading decode rows"):
        runner.prepare(items[1:], torch.tensor([21]))


def test_each_warm_up_step_is_a_valid_step_of_scratch_blocks(shared_model):
    """The steps run before any request to have Triton compile its variants (on CUDA): each is a step the
    model runs (here on the CPU path) with one row of logits per sequence, in blocks the cache has."""
    runner = ModelRunner(shared_model, 16, 16)
    for step in WARM_UP_STEPS:
        plan = runner.warm_up_plan(step)
        assert plan is not None and plan.num_short == sum(rows == 1 for _, rows in step)
        assert max(block for seq in plan.seqs for block in seq.block_table) < runner.num_blocks
        logits = runner.run_inputs(runner.inputs(plan))
        assert logits.shape == (len(step), shared_model.shape.vocab)
    assert runner.warm_up_plan(((0, 16 * 17),)) is None  # more blocks than the cache has: left out
    assert runner.warm_up_kernels() == 0  # nothing is compiled on a CPU
