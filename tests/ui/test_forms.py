"""The schema → form mapping, on the schemas of real apps and on hand-written edge cases (no browser)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from vireo.apps.chat import ChatApp
from vireo.apps.summarize import SummarizeApp
from vireo.ui.forms import FormError, build_input, form_fields, initial_text, main_text_field, parse_value


class Nested(BaseModel):
    name: str
    weight: float = 1.0


class Kitchen(BaseModel):
    """Every kind of field the form builder knows."""

    title: str = Field(..., max_length=80)
    rubric: str | None = Field(None, max_length=2000)
    document: str = Field(..., description="The text to work on.")
    mode: Literal["fast", "careful"] = "fast"
    style: Literal["a", "b"] | None = None
    count: int = Field(3, ge=1, le=10)
    ratio: float = Field(0.5, gt=0, le=1)
    strict: bool = False
    tags: list[str] = Field(default_factory=list)
    sizes: list[int] = [1, 2]
    image_base64: str | None = Field(None, description="PNG or JPEG bytes.")
    attachments_base64: list[str] = Field(default_factory=list)
    parts: list[Nested] = Field(default_factory=list)
    extra: dict[str, str] | None = None


KITCHEN = {f.name: f for f in form_fields(Kitchen.model_json_schema())}


def test_short_strings_get_a_line_and_prose_gets_a_text_area():
    assert KITCHEN["title"].widget == "text"
    assert KITCHEN["document"].widget == "textarea"
    assert KITCHEN["title"].required and KITCHEN["document"].required


def test_enums_become_selects_with_their_options_and_default():
    assert KITCHEN["mode"].widget == "select"
    assert KITCHEN["mode"].options == ("fast", "careful")
    assert KITCHEN["mode"].default == "fast"


def test_optional_enums_are_selects_too():
    assert KITCHEN["style"].widget == "select"
    assert KITCHEN["style"].options == ("a", "b") and not KITCHEN["style"].required


def test_numbers_carry_their_bounds():
    count, ratio = KITCHEN["count"], KITCHEN["ratio"]
    assert (count.widget, count.minimum, count.maximum, count.default) == ("integer", 1, 10, 3)
    assert (ratio.widget, ratio.minimum, ratio.maximum) == ("number", 0, 1)


def test_booleans_become_checkboxes():
    assert KITCHEN["strict"].widget == "checkbox"


def test_string_and_number_lists_are_one_item_per_line():
    assert (KITCHEN["tags"].widget, KITCHEN["tags"].item_type) == ("lines", "string")
    assert (KITCHEN["sizes"].widget, KITCHEN["sizes"].item_type) == ("lines", "integer")
    assert initial_text(KITCHEN["sizes"]) == "1\n2"


def test_base64_fields_become_file_uploaders_labelled_by_the_file():
    assert (KITCHEN["image_base64"].widget, KITCHEN["image_base64"].label) == ("file", "Image")
    assert (KITCHEN["attachments_base64"].widget, KITCHEN["attachments_base64"].label) == ("files", "Attachments")


def test_long_limits_get_a_text_area_whatever_the_name():
    assert KITCHEN["rubric"].widget == "textarea"


def test_nested_objects_and_object_lists_are_json():
    assert KITCHEN["parts"].widget == "json"
    assert KITCHEN["extra"].widget == "json"


def test_lines_are_split_typed_and_blank_lines_dropped():
    assert parse_value(KITCHEN["tags"], "red\n\n  blue \n") == ["red", "blue"]
    assert parse_value(KITCHEN["sizes"], "3\n4") == [3, 4]
    with pytest.raises(FormError, match="sizes"):
        parse_value(KITCHEN["sizes"], "3\nfour")


def test_json_is_parsed_and_bad_json_names_the_field():
    assert parse_value(KITCHEN["parts"], '[{"name": "x"}]') == [{"name": "x"}]
    with pytest.raises(FormError, match="parts: not valid JSON"):
        parse_value(KITCHEN["parts"], "[{name: x}]")


def test_built_input_validates_against_the_model_and_leaves_empty_optionals_out():
    raw = {
        "title": "T",
        "rubric": "",
        "document": "Some text.",
        "mode": "careful",
        "style": None,
        "count": 4,
        "ratio": 0.25,
        "strict": True,
        "tags": "a\nb",
        "sizes": "",
        "image_base64": None,
        "attachments_base64": None,
        "parts": '[{"name": "p", "weight": 2}]',
        "extra": "",
    }
    built = build_input(list(KITCHEN.values()), raw)
    assert "style" not in built and "sizes" not in built and "extra" not in built
    parsed = Kitchen.model_validate(built)
    assert parsed.tags == ["a", "b"] and parsed.parts[0].weight == 2 and parsed.mode == "careful"


def test_a_missing_required_field_is_refused_by_label():
    with pytest.raises(FormError, match="Document is required"):
        build_input(list(KITCHEN.values()), {"title": "T", "document": ""})


def test_summarize_form_matches_the_real_app():
    fields = {f.name: f for f in form_fields(SummarizeApp.Input.model_json_schema())}
    assert fields["text"].widget == "textarea" and fields["text"].required
    assert fields["length"].widget == "select" and "medium" in fields["length"].options
    assert main_text_field(SummarizeApp.Output.model_json_schema()) == "summary"


def test_chat_form_round_trips_through_the_real_app_model():
    fields = form_fields(ChatApp.Input.model_json_schema())
    by_name = {f.name: f for f in fields}
    assert by_name["messages"].widget == "json"  # a list of $ref objects behind Optional
    assert by_name["temperature"].widget == "number" and by_name["temperature"].maximum == 2
    raw = {
        "messages": '[{"role": "user", "content": "hi"}]',
        "max_tokens": 32,
        "temperature": 0.2,
        "top_p": 1.0,
        "stop": "END",
        "seed": None,
        "logprobs": False,
    }
    chat_input = ChatApp.Input.model_validate(build_input(fields, raw))
    assert chat_input.messages[0].content == "hi" and chat_input.stop == ["END"]


def test_main_text_prefers_well_known_names_then_the_first_string():
    assert main_text_field({"properties": {"id": {"type": "string"}, "answer": {"type": "string"}}}) == "answer"
    assert main_text_field({"properties": {"n": {"type": "integer"}, "verdict": {"type": "string"}}}) == "verdict"
    assert main_text_field({"properties": {"n": {"type": "integer"}}}) is None
