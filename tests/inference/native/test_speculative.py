"""Speculative decoding: identical greedy output for both proposers; exact sampling distribution."""

import asyncio
import random

import pytest
import torch

from vireo.inference.api import GenerationRequest, SamplingParams
from vireo.inference.native.spec_decode.prompt_lookup import NgramIndex
from vireo.inference.native.spec_decode.speculative import accept_greedy, accept_sampled

from .conftest import PROMPTS

GROUNDED = [
    "Repeat exactly: the quick brown fox jumps over the lazy dog. The quick brown fox",
    "Text: Alice met Bob in Paris. Bob met Carol in Rome.\nQuestion: Where did Bob meet Carol?\nAnswer:",
    "def add(a, b):\n    return a + b\n\ndef add_three(a, b, c):\n    return",
    "Copy this list: apples, pears, plums, cherries, apples, pears,",
    "1, 2, 3, 4, 5, 6, 7, 8, 9,",
    "Summarize: The meeting moved to Friday. The meeting moved because the room was booked.",
    "<ul>\n  <li>one</li>\n  <li>two</li>\n  <li>",
    "for i in range(10):\n    print(i)\nfor j in range(10):\n",
    "Name: Ada Lovelace. Born: 1815. Name: Alan Turing. Born:",
    "The rain in Spain stays mainly in the plain. The rain in Spain",
]
PROMPTS_20 = PROMPTS + GROUNDED


def greedy(prompt, speculation):
    return GenerationRequest(
        prompt=prompt, sampling=SamplingParams(max_tokens=24), speculation=speculation, prefix_cache=False
    )


async def run_in_groups(engine, speculation, size=4):
    texts = []
    for start in range(0, len(PROMPTS_20), size):
        group = PROMPTS_20[start : start + size]
        finals = await asyncio.gather(*(engine.complete(greedy(p, speculation)) for p in group))
        texts += [f.text for f in finals]
    return texts


@pytest.fixture(scope="module")
async def plain_outputs(native):
    return await run_in_groups(native, "off")


async def test_prompt_lookup_keeps_greedy_output(native, plain_outputs):
    before = native.stats()
    assert await run_in_groups(native, "prompt_lookup") == plain_outputs
    after = native.stats()
    assert after.spec_proposed > before.spec_proposed
    assert after.spec_accepted > before.spec_accepted


async def test_draft_model_keeps_greedy_output(engine_factory, plain_outputs):
    engine = engine_factory(kv_cache_tokens=8192, speculation="draft", draft_model="smollm2-135m")
    assert await run_in_groups(engine, "draft") == plain_outputs
    assert engine.stats().spec_acceptance > 0.5


def test_prompt_lookup_proposes_the_continuation_of_the_latest_match():
    tokens = [1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 5, 1, 2, 3]
    assert NgramIndex().propose(tokens, 2) == [7, 8]
    assert NgramIndex().propose([4, 5, 6], 2) == []


def _scan_proposal(tokens: list[int], k: int, max_ngram: int = 3) -> list[int]:
    """The definition, by brute force: latest earlier match of the longest matching tail."""
    for n in range(max_ngram, 0, -1):
        if len(tokens) <= n:
            continue
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start : start + n] == tokens[-n:]:
                return tokens[start + n : start + n + k]
    return []


def test_prompt_lookup_index_grows_with_the_sequence_and_matches_a_full_scan():
    rng = random.Random(7)
    tokens, index = [rng.randrange(6) for _ in range(5)], NgramIndex()
    for _ in range(300):  # small vocabulary: many repeated n-grams, ties and misses
        k = rng.randrange(1, 6)
        assert index.propose(tokens, k) == _scan_proposal(tokens, k)
        tokens.extend(rng.randrange(6) for _ in range(rng.randrange(1, 4)))


def test_greedy_acceptance_keeps_matching_run_then_corrects():
    logits = torch.zeros(4, 10)
    for row, token in enumerate([3, 4, 6, 2]):
        logits[row, token] = 1.0
    assert accept_greedy([3, 4, 5], logits) == [3, 4, 6]
    assert accept_greedy([3, 4, 6], logits) == [3, 4, 6, 2]


@pytest.mark.slow  # many thousand samples
def test_rejection_sampling_reproduces_the_target_distribution():
    gen = torch.Generator().manual_seed(0)
    target = torch.tensor([[0.1, 0.5, 0.2, 0.15, 0.05], [0.3, 0.3, 0.1, 0.2, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    draft = [3, 0]  # deterministic guesses, one unlikely, one likely
    trials = 20000
    first, second_given_accept = torch.zeros(5), torch.zeros(5)
    for _ in range(trials):
        out = accept_sampled(draft, target, gen)
        first[out[0]] += 1
        if out[0] == draft[0]:
            second_given_accept[out[1]] += 1
    assert torch.allclose(first / trials, target[0], atol=0.015)
    assert torch.allclose(second_given_accept / second_given_accept.sum(), target[1], atol=0.03)


def _decoding_batch(size):
    from vireo.inference.local import EngineConfig
    from vireo.inference.native.scheduling.batch import Batch, ScheduledSeq
    from vireo.inference.native.scheduling.block_manager import BlockManager
    from vireo.inference.native.scheduling.sequence import Sequence
    from vireo.inference.native.spec_decode.speculative import Speculator

    blocks = BlockManager(512, 16)
    speculator = Speculator(EngineConfig(speculation="prompt_lookup"), blocks)
    items = []
    for _ in range(size):
        seq = Sequence("r", [5, 6, 7, 8] * 8, SamplingParams(max_tokens=50), speculation="prompt_lookup")
        blocks.allocate(seq, len(seq))
        seq.num_computed_tokens = len(seq) - 1
        items.append(ScheduledSeq(seq, 1))
    return speculator, Batch(items)


def test_small_batches_speculate_and_large_batches_do_not():
    """Before any step was timed, the prior cost model (a row costs 15 % of a step) decides."""
    speculator, small = _decoding_batch(1)
    speculator.attach_drafts(small)
    assert small.items[0].draft and small.items[0].draft == [5, 6, 7, 8][: len(small.items[0].draft)]
    speculator, large = _decoding_batch(16)
    speculator.attach_drafts(large)
    assert all(item.draft == [] for item in large.items)


def test_a_machine_where_rows_are_free_speculates_deep_even_in_large_batches():
    speculator, large = _decoding_batch(16)
    for rows in (16, 32, 48, 64, 80) * 4:  # a GPU-like machine: the step costs the same for any rows
        speculator.cost.observe(rows, 0.010)
    for item in large.items:
        state = speculator.state(item.seq)
        state.hits, state.trials = 8.0, 10.0  # guesses hold 80 % of the time
    speculator.attach_drafts(large)
    assert all(item.draft == [5, 6, 7, 8] for item in large.items)


def test_a_machine_where_rows_are_dear_does_not_speculate_even_alone():
    speculator, small = _decoding_batch(1)
    for rows in (1, 2, 3, 4, 5) * 4:  # every row costs as much as the whole one-row step
        speculator.cost.observe(rows, 0.010 * rows)
    speculator.attach_drafts(small)
    assert small.items[0].draft == []


def test_the_step_cost_fit_recovers_fixed_and_per_row_time():
    from vireo.inference.native.spec_decode.spec_cost import StepCost

    cost = StepCost()
    for rows in range(1, 30):
        cost.observe(rows, 0.027 + 0.0045 * rows)
    fixed, per_row = cost.fit()
    assert abs(fixed - 0.027) < 1e-9 and abs(per_row - 0.0045) < 1e-9


def test_expected_tokens_is_the_geometric_run_plus_the_target_token():
    from vireo.inference.native.spec_decode.spec_cost import expected_tokens

    assert expected_tokens(0.0, 4) == 1.0
    assert expected_tokens(0.5, 2) == 1.75
    assert abs(expected_tokens(1.0, 4) - 5.0) < 0.05


def test_poor_acceptance_pauses_speculation_for_that_sequence():
    speculator, batch = _decoding_batch(1)
    item = batch.items[0]
    for _ in range(3):
        speculator._learn(item.seq, proposed=4, accepted=0)
    speculator.attach_drafts(batch)
    assert item.draft == [] and speculator.state(item.seq).k == 1


def test_realized_rates_veto_speculation_where_it_delivered_fewer_tokens_per_second():
    from vireo.inference.native.spec_decode.spec_cost import RealizedRates

    rates = RealizedRates(explore_every=8)
    for _ in range(10):
        rates.record(16, speculated=False, tokens=16, seconds=0.100)  # 160 tok/s
        rates.record(16, speculated=True, tokens=20, seconds=0.140)  # 143 tok/s
        rates.record(2, speculated=False, tokens=2, seconds=0.040)  # 50 tok/s
        rates.record(2, speculated=True, tokens=5, seconds=0.050)  # 100 tok/s
    big = [rates.allow(16, 3) for _ in range(16)]
    assert big.count(0) == 14 and big.count(3) == 2  # vetoed, re-tried every 8th decision
    assert [rates.allow(20, 3) for _ in range(3)] == [0, 0, 0]  # 16..31 seqs share one bucket
    assert all(rates.allow(2, 3) == 3 for _ in range(16))  # small batches: speculation paid
    assert rates.allow(2, 0) == 0


def test_realized_rates_learn_plain_steps_now_and_then_before_they_can_compare():
    from vireo.inference.native.spec_decode.spec_cost import RealizedRates

    rates = RealizedRates(explore_every=4)
    assert [rates.allow(8, 2) for _ in range(8)] == [2, 2, 2, 0, 2, 2, 2, 0]
