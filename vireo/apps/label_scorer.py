"""Score label names as the model's answer: one forward pass per text, calibrated probabilities.

Each label is scored as the complete assistant answer (label text plus the chat template's
end-of-turn marker), so multi-token labels compete fairly and "news" cannot win on behalf of
"news about sports". Raw label probabilities carry the model's bias toward some label strings;
we divide them by a content-free prior (Zhao et al. 2021, "Calibrate Before Use"): the same
prompt scored with placeholder texts ("N/A", "", "[MASK]"), averaged. The result is normalised
over the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vireo.inference.api import Engine, GenerationRequest

CONTENT_FREE = ("N/A", "", "[MASK]")
_MARK = "LABELMARK7"
CALIBRATION_NOTE = (
    "probabilities are the model's likelihood of each full label as its answer, divided by "
    "the likelihood under content-free inputs (N/A, empty, [MASK]) and normalised over the "
    "labels (contextual calibration, Zhao et al. 2021)"
)
RAW_NOTE = "probabilities are the model's likelihood of each full label as its answer, normalised over the labels"


@dataclass
class LabelScores:
    logprobs: list[float]  # raw sum of token log-probs of each label answer
    probabilities: list[float]  # calibrated (or raw) and normalised over the labels


def softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def turn_end_marker(engine: Engine) -> str:
    """What the chat template writes right after an assistant answer (e.g. '<|im_end|>'), or ''."""
    rendered = engine.render(
        GenerationRequest(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": _MARK}])
    )
    if _MARK not in rendered:
        return ""
    after = rendered.split(_MARK, 1)[1]
    return after.split()[0] if after.split() else ""


_PRIORS: dict[tuple, list[float]] = {}  # (engine, prompts, answers) -> prior; scoring is deterministic
_PRIORS_KEPT = 256


class LabelScorer:
    """Holds the label answers and the content-free prior for one job's prompt format."""

    def __init__(self, engine: Engine, labels: list[str], calibrate: bool):
        self.engine, self.labels, self.calibrate = engine, labels, calibrate
        end = turn_end_marker(engine)
        self.answers = [f"{label}{end}" for label in labels]
        self.prior: list[float] | None = None

    async def prepare(self, render_prompt) -> None:
        """Score the content-free placeholders once; `render_prompt(text)` builds a prompt."""
        if not self.calibrate:
            return
        prompts = [render_prompt(text) for text in CONTENT_FREE]
        key = (id(self.engine), self.engine.model_name, tuple(prompts), tuple(self.answers))
        if key not in _PRIORS:
            priors = [softmax(await self.engine.score(prompt, self.answers)) for prompt in prompts]
            if len(_PRIORS) >= _PRIORS_KEPT:
                _PRIORS.pop(next(iter(_PRIORS)))
            _PRIORS[key] = [sum(p[i] for p in priors) / len(priors) for i in range(len(self.labels))]
        self.prior = _PRIORS[key]

    async def score(self, prompt: str) -> LabelScores:
        logprobs = await self.engine.score(prompt, self.answers)
        probs = softmax(logprobs)
        if self.prior is not None:
            probs = [p / max(q, 1e-9) for p, q in zip(probs, self.prior)]
            total = sum(probs)
            probs = [p / total for p in probs]
        return LabelScores(logprobs=logprobs, probabilities=probs)
