"""The llama.cpp peer of `vireo bench engines` on the packaged SmolLM2 GGUF: exactly `new_tokens`
tokens per sequence, end-of-generation or not, and the same greedy tokens whether a prompt decodes
alone or beside another in one `llama_decode` batch. llama-cpp-python is the bench-only `llamacpp`
extra, which `make install` / `make test` leave out: without it these tests are reported skipped."""

from __future__ import annotations

import pytest

from vireo.inference.registry import ModelRegistry
from vireo.tools.bench.engine_measures import level_summary
from vireo.tools.bench.llamacpp_peer import LlamaCppPeer, llamacpp_available

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.slow,
    pytest.mark.skipif(
        not llamacpp_available(),
        reason="llama-cpp-python is not installed (the bench-only `llamacpp` extra: make bench-deps)",
    ),
]

NEW_TOKENS = 16
# a finished chat turn: SmolLM2 answers in a few tokens and then says <|im_end|>, its end of generation
# (which words, and how many, differ between llama.cpp's AVX2 and AVX-512 builds: 12 tokens on the latter)
CHAT = "<|im_start|>user\nSay yes.<|im_end|>\n<|im_start|>assistant\n"
STORY = "Document c2-1. Continue the text.\nThe river town woke slowly, its bakeries lighting up one window"


# The tests load the model without llama.cpp's extra buffer types (AMX, repacked layouts): its AMX path
# faults on some VMs (a general protection fault in libggml-cpu on the 2026-12-05 Xeon VM), and what they
# check, the peer's batching and bookkeeping, is the same with or without them.
@pytest.fixture(scope="module")
def peer():
    gguf = ModelRegistry().gguf_path("smollm2-135m")
    peer = LlamaCppPeer(gguf, threads=2, n_seq_max=2, context_per_sequence=128, extra_bufts=False)
    yield peer
    peer.close()


def test_every_sequence_makes_exactly_new_tokens_and_batching_keeps_the_greedy_tokens(peer):
    prompts = [peer.tokenize(CHAT), peer.tokenize(STORY)]
    alone = []
    for prompt in prompts:
        timings, wall, (tokens,) = peer.run_level([prompt], NEW_TOKENS, concurrency=1)
        assert level_summary(timings, wall, 1, NEW_TOKENS)["all_requests_made_new_tokens"]
        alone.append(tokens)
    timings, wall, together = peer.run_level(prompts, NEW_TOKENS, concurrency=2)
    summary = level_summary(timings, wall, 2, NEW_TOKENS)
    assert summary["all_requests_made_new_tokens"] and summary["output_tokens"] == 2 * NEW_TOKENS
    assert [len(tokens) for tokens in alone + together] == [NEW_TOKENS] * 4
    assert together == alone, "a prompt's greedy tokens changed when it shared the batch"
    lib = peer._lib
    ends = [i for i, t in enumerate(alone[0]) if lib.llama_vocab_is_eog(peer.vocab, t)]
    assert ends and ends[0] < NEW_TOKENS - 1, "the chat turn should end early, and decoding go on past its end"


def test_a_level_runs_more_requests_than_sequences_reusing_them(peer):
    prompts = [peer.tokenize(STORY + "." * i) for i in range(3)]
    timings, wall, outputs = peer.run_level(prompts, 4, concurrency=2)
    assert [len(tokens) for tokens in outputs] == [4, 4, 4]
    assert all(t.first is not None and len(t.gaps) == 3 for t in timings)
    with pytest.raises(ValueError, match="outside"):
        peer.run_level(prompts, 4, concurrency=3)  # the context has two sequences


def test_the_bench_runs_the_peer_in_its_own_process_beside_the_ratio_column():
    from vireo.tools.bench.engines import markdown_table, run_engine_benchmark

    report = run_engine_benchmark(
        backends=["llamacpp:no-extra-bufts"],
        requests=2,
        prompt_tokens=(16, 40),
        new_tokens=4,
        concurrency=(1, 2),
        threads=2,
    )
    assert report["failures"] == {}
    (result,) = report["results"]
    assert result["backend"] == "llamacpp" and result["llamacpp"]["threads"] == 2
    assert result["llamacpp"]["extra_buffer_types"] is False
    assert [level["concurrency"] for level in result["levels"]] == [1, 2]
    assert all(level["all_requests_made_new_tokens"] for level in result["levels"])
    assert result["llamacpp"]["gguf"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert result["llamacpp"]["prompt_tokenization"]["prompts"] == 4
    assert result["peak_rss_mb"] == max(result["peak_rss_hwm_mb"], result["peak_rss_sampled_mb"]) > 0
    table = markdown_table(report)
    assert "vs llamacpp" in table.splitlines()[0] and "| llamacpp | 2 |" in table
