"""A model's text side: chat rendering, tokenizing and detokenizing with its HF tokenizer.

`LocalEngine` holds one beside its model; `EngineProcess` holds one in the caller's process, so that
counting a prompt's tokens or rendering a chat never waits on the engine's own process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vireo.inference.api import EngineError, GenerationRequest


def load_tokenizer(model_path: Path):
    """The folder's tokenizer. A `tokenizer.json` loads as transformers' fast tokenizer class itself:
    `AutoTokenizer` gives the same tokens (tests/inference/test_prompt_text.py), but importing it pulls in
    transformers' generation code and with it scikit-learn, pandas and torch's compiler (~290 MB resident
    here), a cost for a process that needs only the tokenizer (the API's submit-time length check).
    Folders without one (sentencepiece only) take `AutoTokenizer`."""
    if (Path(model_path) / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(model_path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def load_encoder(model_path: Path) -> tuple[Callable[[str], list[int]], dict[str, int]]:
    """What counting a text's tokens needs of the folder's tokenizer: text -> ids (no special tokens added), and
    the vocabulary. A `tokenizer.json` loads with `tokenizers` alone, the Rust tokenizer that transformers' fast
    class wraps (the same ids: tests/inference/test_prompt_text.py), in ~35 MB resident instead of ~87 MB with
    transformers (SmolLM2's, measured): the API's processes hold one per served model and need nothing else of it.
    Other folders take `load_tokenizer`."""
    if (Path(model_path) / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        core = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
        # encode_batch, as transformers calls it: it lets go of the GIL while it works (encode does not), so
        # the API's event loop keeps answering while a long prompt is counted on its tokenizing thread
        return (lambda text: core.encode_batch([text], add_special_tokens=False)[0].ids), core.get_vocab()
    tokenizer = load_tokenizer(model_path)
    return (lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]), tokenizer.get_vocab()


class PromptText:
    """render / encode / decode / count_tokens of one model's tokenizer and chat template."""

    def __init__(self, tokenizer, model_name: str):
        self.tokenizer = tokenizer
        self.model_name = model_name

    @classmethod
    def load(cls, model_path: Path, model_name: str) -> PromptText:
        return cls(load_tokenizer(model_path), model_name)

    def render(self, request: GenerationRequest) -> str:
        if request.messages is not None:
            # transformers types `tools` as an invariant list[dict | Callable]: a list[dict] is what it reads
            tools: list | None = request.tools
            rendered = self.tokenizer.apply_chat_template(
                request.messages, tools=tools, tokenize=False, add_generation_prompt=True
            )
            assert isinstance(rendered, str)  # tokenize=False: the text, not ids or a BatchEncoding
            return rendered
        if request.prompt_token_ids is not None:
            return self.decode(request.prompt_token_ids)
        return request.prompt or ""

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, token_ids: list[int]) -> str:
        text = self.tokenizer.decode(token_ids)
        assert isinstance(text, str)  # one sequence of ids: one text
        return text

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def check_token_ids(self, token_ids: list[int]) -> None:
        """Token ids given by a caller must name tokens of the vocabulary."""
        vocabulary = len(self.tokenizer)
        bad = next((t for t in token_ids if not 0 <= t < vocabulary), None)
        if bad is not None:
            raise EngineError(f"token id {bad} is not in the vocabulary of {self.model_name} (0 to {vocabulary - 1})")
