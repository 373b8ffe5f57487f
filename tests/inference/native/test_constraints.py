"""Constrained decoding in the native engine, on the real SmolLM2: every output obeys its constraint."""

import asyncio
import json
import re

import jsonschema
import pytest
import torch

from vireo.inference.api import Constraint, GenerationRequest, InvalidConstraintError, SamplingParams

SENTIMENTS = ["positive", "negative", "neutral"]
REVIEW = "Review: A wonderful, moving film. I loved every minute!\nSentiment:"
PHONE = r"\(\d{3}\) \d{3}-\d{4}"
PHONE_PROMPT = "Call our office at"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string", "maxLength": 24},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
PERSON_PROMPT = "A person described as JSON with name, age and city:\n"
SEEDS = [1, 2, 3]


def constrained(prompt, constraint, max_tokens=64, **sampling) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt, constraint=constraint, sampling=SamplingParams(max_tokens=max_tokens, **sampling)
    )


def sampled(seed: int) -> dict:
    return {"temperature": 1.0, "seed": seed}


async def test_choice_greedy_is_exactly_one_of_the_choices(native):
    final = await native.complete(constrained(REVIEW, Constraint(choices=SENTIMENTS)))

    assert final.text in SENTIMENTS
    assert final.finish_reason == "stop"


@pytest.mark.parametrize("seed", SEEDS)
async def test_choice_sampled_is_exactly_one_of_the_choices(native, seed):
    final = await native.complete(constrained(REVIEW, Constraint(choices=SENTIMENTS), **sampled(seed)))

    assert final.text in SENTIMENTS


async def test_choices_may_hold_spaces_quotes_and_newlines(native):
    choices = [' "yes"', " no,\nnever", " café"]
    final = await native.complete(constrained("Is it true?", Constraint(choices=choices), **sampled(7)))

    assert final.text in choices


async def test_regex_greedy_output_fullmatches(native):
    final = await native.complete(constrained(PHONE_PROMPT, Constraint(regex=PHONE)))

    assert re.fullmatch(PHONE, final.text), final.text
    assert final.finish_reason == "stop"


@pytest.mark.parametrize("seed", SEEDS)
async def test_regex_sampled_output_fullmatches(native, seed):
    final = await native.complete(constrained(PHONE_PROMPT, Constraint(regex=PHONE), **sampled(seed)))

    assert re.fullmatch(PHONE, final.text), final.text


async def test_json_schema_greedy_output_parses_and_validates(native):
    final = await native.complete(constrained(PERSON_PROMPT, Constraint(json_schema=PERSON)))

    jsonschema.validate(json.loads(final.text), PERSON)
    assert final.finish_reason == "stop"


async def test_json_output_writes_properties_in_schema_order(native):
    final = await native.complete(constrained(PERSON_PROMPT, Constraint(json_schema=PERSON)))

    assert list(json.loads(final.text)) == list(PERSON["properties"])


@pytest.mark.parametrize("seed", SEEDS)
async def test_json_schema_sampled_output_parses_and_validates(native, seed):
    final = await native.complete(constrained(PERSON_PROMPT, Constraint(json_schema=PERSON), **sampled(seed)))

    jsonschema.validate(json.loads(final.text), PERSON)


async def test_unconstrained_neighbour_in_a_batch_is_unchanged(native):
    plain = GenerationRequest(prompt=REVIEW, sampling=SamplingParams(max_tokens=24))
    alone = await native.complete(plain)

    together = await asyncio.gather(
        native.complete(GenerationRequest(prompt=REVIEW, sampling=SamplingParams(max_tokens=24))),
        native.complete(constrained(REVIEW, Constraint(choices=SENTIMENTS))),
        native.complete(constrained(PHONE_PROMPT, Constraint(regex=PHONE), **sampled(4))),
        native.complete(constrained(PERSON_PROMPT, Constraint(json_schema=PERSON))),
    )

    assert together[0].text == alone.text
    assert together[1].text in SENTIMENTS
    assert re.fullmatch(PHONE, together[2].text)
    jsonschema.validate(json.loads(together[3].text), PERSON)


async def test_preempted_constrained_requests_resume_their_grammar(native, engine_factory):
    prompts = [
        PERSON_PROMPT,
        "Here is a person record in JSON:\n",
        "JSON for one customer:\n",
        "The new employee, as JSON:\n",
    ]
    expected = [(await native.complete(constrained(p, Constraint(json_schema=PERSON)))).text for p in prompts]
    small = engine_factory(kv_cache_tokens=80, max_batch=8, prefix_caching=False)

    outputs = await asyncio.gather(*(small.complete(constrained(p, Constraint(json_schema=PERSON))) for p in prompts))

    assert small.scheduler.num_preemptions > 0
    assert [f.text for f in outputs] == expected


async def test_a_constrained_request_never_speculates(native):
    before = native.stats().spec_proposed
    repetitive = "1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3,"
    request = constrained(repetitive, Constraint(regex=r"( \d,){12}"), max_tokens=40)
    request.speculation = "prompt_lookup"

    final = await native.complete(request)

    assert re.fullmatch(r"( \d,){12}", final.text)
    assert native.stats().spec_proposed == before


async def test_equal_constraints_compile_once(native):
    before = native.constraints.compiled.cache_info()

    native.constraints.matcher_for(Constraint(regex=r"[ab]+c"))
    native.constraints.matcher_for(Constraint(regex=r"[ab]+c"))

    after = native.constraints.compiled.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


def test_mask_touches_only_constrained_rows(native):
    logits = torch.randn(3, native.model.shape.vocab)
    grammar = native.constraints.matcher_for(Constraint(choices=["yes", "no"]))

    masked = native.constraints.mask(logits, [None, grammar, None])

    assert torch.equal(masked[0], logits[0]) and torch.equal(masked[2], logits[2])
    allowed = masked[1].isfinite().nonzero().flatten().tolist()
    assert allowed and all(any(c.startswith(native.tokenizer.decode([t])) for c in ["yes", "no"]) for t in allowed)
    assert logits.isfinite().all(), "the raw logits stay for logprobs"


@pytest.mark.parametrize(
    "constraint, message",
    [
        (Constraint(regex="(abc"), "unclosed group"),
        (Constraint(json_schema={"type": "objectx"}), "objectx"),
        (Constraint(json_schema={"type": "string", "pattern": "[a-"}), "regex"),
        (Constraint(choices=[]), "at least one"),
        (Constraint(), "exactly one"),
        (Constraint(choices=["a"], regex="a"), "exactly one"),
    ],
)
async def test_an_invalid_constraint_is_refused_with_its_reason(native, constraint, message):
    with pytest.raises(InvalidConstraintError, match=re.escape(message)):
        await native.complete(constrained(REVIEW, constraint))

    assert native.stats().running == 0
