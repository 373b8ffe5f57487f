"""Field names become labels people read; a title an app's author wrote is kept."""

from __future__ import annotations

from pydantic import BaseModel, Field

from vireo.apps.caption import CaptionApp
from vireo.apps.code import CodeApp
from vireo.ui.forms import form_fields
from vireo.ui.labels import field_label, humanize


def test_names_become_words_with_abbreviations_and_units():
    assert humanize("use_llm") == "Use LLM"
    assert humanize("timeout_s") == "Timeout (seconds)"
    assert humanize("job_ids_a") == "Job IDs a"
    assert humanize("read_text") == "Read text"
    assert humanize("ocr") == "OCR"
    assert humanize("mmr") == "MMR"


def test_an_authors_title_is_kept_and_pydantics_own_is_replaced():
    class Input(BaseModel):
        vision_model: str = ""
        k: int = Field(3, title="Passages to retrieve")

    schema = Input.model_json_schema()
    assert schema["properties"]["vision_model"]["title"] == "Vision Model"  # what pydantic writes
    labels = {f.name: f.label for f in form_fields(schema)}
    assert labels == {"vision_model": "Vision model", "k": "Passages to retrieve"}
    assert field_label("use_llm", "Use Llm") == "Use LLM"


def test_the_generic_form_of_our_apps_shows_no_raw_field_name():
    for app in (CaptionApp, CodeApp):
        for field in form_fields(app.Input.model_json_schema()):
            assert "_" not in field.label and field.label[0].isupper(), field
    labels = {f.name: f.label for f in form_fields(CaptionApp.Input.model_json_schema())}
    assert labels["use_llm"] == "Use LLM" and labels["image_base64"] == "Image"
