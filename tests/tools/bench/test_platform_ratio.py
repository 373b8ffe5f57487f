"""The platform benchmark's workload and accounting (platform_ratio.py): prompts of a fixed length that no
other request's cache can serve, and the engine's steps by kind between two stats snapshots."""

from vireo.inference.native.stats import STEP_MS_EDGES, EngineCounters
from vireo.tools.bench.platform_ratio import fixed_prompts, prompts_by_level, step_percentiles, step_tally


class WordTokens:
    """A tokenizer stand-in: a token a word, two for the words opening with "t1" (t1, t10 ... t19)."""

    def count_tokens(self, text: str) -> int:
        return sum(2 if word.startswith("t1") else 1 for word in text.split())


def test_fixed_prompts_have_the_fewest_words_that_reach_the_length_and_heads_of_their_own():
    tokens, engine = 12, WordTokens()
    prompts = fixed_prompts(engine, tokens, 25)
    assert len({p.split()[0] for p in prompts}) == 25  # no two share their first word
    for prompt in prompts:
        assert engine.count_tokens(prompt) == tokens  # here every length is reachable exactly
        assert engine.count_tokens(prompt.rsplit(" ", 1)[0]) < tokens
    assert prompts[0].split()[0] == "t1" and len(prompts[0].split()) == 11 and len(prompts[1].split()) == 12


def test_each_level_gets_prompts_of_its_own():
    prompts = [f"p{i}" for i in range(4 + 8 + 16)]
    by_level = prompts_by_level(prompts, [1, 4, 8], lambda c: max(4, 2 * c))
    assert [len(by_level[c]) for c in (1, 4, 8)] == [4, 8, 16]
    assert sorted(sum(by_level.values(), [])) == sorted(prompts)  # each once, none reused by a later level


def test_step_tally_is_the_difference_of_two_snapshots():
    before = {
        "steps_by_kind": {"decode": 10, "prefill": 2, "mixed": 0},
        "step_seconds_by_kind": {"decode": 0.5, "prefill": 0.2, "mixed": 0.0},
    }
    after = {
        "steps_by_kind": {"decode": 110, "prefill": 4, "mixed": 3},
        "step_seconds_by_kind": {"decode": 2.5, "prefill": 0.3, "mixed": 0.09},
    }
    tally = step_tally(before, after)
    assert tally["steps_by_kind"] == {"decode": 100, "prefill": 2, "mixed": 3}
    assert tally["ms_per_step_by_kind"] == {"decode": 20.0, "prefill": 50.0, "mixed": 30.0}
    assert step_tally({}, {"backend": "vllm"}) == {"steps_by_kind": {}, "ms_per_step_by_kind": {}}


def test_the_step_tally_gives_the_median_and_90th_percentile_of_the_steps_between_snapshots():
    counters = EngineCounters()
    for ms in (5, 5, 5):  # before the first snapshot: not in the tally
        counters.count_step("prefill", ms / 1000)
    before = {"steps_by_kind": dict(counters.steps), "step_ms_histogram_by_kind": _copy(counters.step_histogram)}
    for ms in (20, 21, 22, 23, 24, 25, 26, 27, 28, 90):  # one slow step pulls the mean up, not the median
        counters.count_step("prefill", ms / 1000)
    after = {
        "steps_by_kind": dict(counters.steps),
        "step_seconds_by_kind": dict(counters.step_seconds),
        "step_ms_histogram_by_kind": _copy(counters.step_histogram),
    }
    tally = step_tally({**before, "step_seconds_by_kind": {"prefill": 0.015}}, after)
    assert tally["steps_by_kind"]["prefill"] == 10 and tally["ms_per_step_by_kind"]["prefill"] == 30.6
    p50, p90 = tally["ms_per_step_p50_p90_by_kind"]["prefill"]
    assert 24 <= p50 <= 24 * 1.2 and 28 <= p90 <= 28 * 1.2  # the bucket (20 % wide) each falls in
    assert list(tally["ms_per_step_p50_p90_by_kind"]) == ["prefill"]  # kinds with no steps in the level: none


def test_a_step_beyond_the_last_bucket_reads_as_the_last_edge():
    counts = [0] * (len(STEP_MS_EDGES) + 1)
    counts[-1] = 1
    assert step_percentiles(counts, (0.5,)) == [STEP_MS_EDGES[-1]]


def _copy(histograms: dict) -> dict:
    return {kind: list(counts) for kind, counts in histograms.items()}
