"""Calibration data and layer-by-layer execution for the activation-aware quantizers.

Calibration text is the Python documentation shipped with the standard library
(`pydoc_data.topics`): English prose and code, available offline. Its first 80 % calibrates;
the last 20 % is held out for perplexity. AWQ and GPTQ walk the decoder one layer at a time on
cached hidden states, so only one layer's activations are live at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, ContextManager, Mapping

import torch

CALIBRATION_SHARE = 0.8


def python_docs_text() -> str:
    """The standard library's pydoc topics, joined in a fixed order."""
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[name] for name in sorted(topics.topics))


def _split_point(text: str) -> int:
    return int(len(text) * CALIBRATION_SHARE)


def heldout_docs_text() -> str:
    """The part of the Python docs never used for calibration."""
    text = python_docs_text()
    return text[_split_point(text) :]


def calibration_windows(tokenizer, samples: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """`samples` random token windows [samples, seq_len] from the calibration share."""
    text = python_docs_text()
    ids = tokenizer(text[: _split_point(text)], return_tensors="pt").input_ids[0]
    rng = random.Random(seed)
    starts = [rng.randrange(0, len(ids) - seq_len) for _ in range(samples)]
    return torch.stack([ids[s : s + seq_len] for s in starts])


class _Captured(Exception):
    """Raised by the hook on layer 0 once its inputs are recorded."""


@dataclass
class LayerInputs:
    """Hidden states entering a decoder layer, in batches, plus the layer's other arguments."""

    hidden: list[torch.Tensor]
    kwargs: dict


def first_layer_inputs(model, input_ids: torch.Tensor, batch_size: int) -> LayerInputs:
    """Run the embedding and rotary set-up only, capturing what layer 0 receives."""
    layers = decoder_layers(model)
    hidden, kwargs = [], {}

    def hook(_module, args, kw):
        hidden.append(args[0] if args else kw.pop("hidden_states"))
        kwargs.update({k: v for k, v in kw.items() if k != "hidden_states"})
        raise _Captured

    handle = layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in input_ids.split(batch_size):
            try:
                model(batch, use_cache=False)
            except _Captured:
                pass
    finally:
        handle.remove()
    kwargs["use_cache"] = False
    kwargs.pop("past_key_values", None)
    return LayerInputs(hidden, kwargs)


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder layers of a Llama/Qwen2-style HF causal LM."""
    return model.model.layers


def run_layer(layer, inputs: LayerInputs) -> list[torch.Tensor]:
    """The layer's output for every cached batch (the next layer's inputs)."""
    outs = []
    for h in inputs.hidden:
        out = layer(h, **inputs.kwargs)
        outs.append(out[0] if isinstance(out, tuple) else out)
    return outs


def record_inputs(
    modules: Mapping[str, torch.nn.Module], sink: Callable[[str, torch.Tensor], None]
) -> ContextManager[None]:
    """Context manager: call sink(name, input as [tokens, features]) on every forward."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        handles = [
            m.register_forward_pre_hook(lambda _m, args, name=name: sink(name, args[0].reshape(-1, args[0].shape[-1])))
            for name, m in modules.items()
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    return ctx()


def layer_linears(layer) -> dict[str, torch.nn.Linear]:
    """The linear projections of one decoder layer, by their name inside it."""
    return {name: m for name, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
