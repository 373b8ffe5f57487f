"""Generate: n variants with their own seeds; template variables are checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vireo.apps.generate import GenerateApp

APP = GenerateApp()


async def test_n_variants_come_back_each_with_its_own_seed(run_app):
    out, ctx = await run_app(
        APP,
        {
            "template": "product_description",
            "variables": {"product": "a steel water bottle"},
            "tone": "playful",
            "n": 2,
            "seed": 7,
        },
        max_tokens=12,
    )
    assert [v.seed for v in out.variants] == [7, 8]
    assert all(v.text for v in out.variants)
    assert out.variants[0].text != out.variants[1].text
    assert "steel water bottle" in out.brief and "playful" in out.brief
    assert ctx.progress_log[-1][0] == 1.0


def test_missing_template_variables_are_named():
    with pytest.raises(ValidationError, match="missing: purpose"):
        GenerateApp.Input(template="email", variables={"recipient": "Ana"})


def test_unknown_variables_are_named_with_the_accepted_ones():
    with pytest.raises(ValidationError, match=r"unknown: colour \(accepted: product"):
        GenerateApp.Input(template="ad_copy", variables={"product": "tea", "colour": "red"})


def test_the_custom_template_needs_instructions():
    with pytest.raises(ValidationError, match="instructions"):
        GenerateApp.Input(template="custom")
