"""The packaged MiniLM embedder's public surface: vectors and token counts."""

from __future__ import annotations

from vireo.inference.embedder import Embedder


def test_token_counts_include_the_special_tokens_and_match_the_tokenizer():
    embedder = Embedder()
    texts = ["a cat", "The tax law of 1986, revisited."]
    counts = embedder.count_tokens(texts)
    assert counts[0] == 4  # [CLS] a cat [SEP]
    assert counts[1] > counts[0]
    assert counts == [embedder.count_tokens([t])[0] for t in texts]  # one at a time or together
    assert embedder.count_tokens([]) == []
    assert len(embedder.encode(texts)[0]) == 384
