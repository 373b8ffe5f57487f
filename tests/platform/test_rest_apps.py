"""The multi-call apps through the real job path: REST → queue → worker (native engine) → back."""

from __future__ import annotations

import base64
import uuid

import openai
import pytest

from tests.apps.caption.conftest import photo_png
from tests.conftest import API_KEY
from tests.platform.test_jobs import submit, wait_done

LIGHTHOUSE = (
    "The Vireo lighthouse stands on the northern cape of Islay. It was built in 1887 by the "
    "Northern Lighthouse Board and its light can be seen 24 nautical miles out to sea. "
    "The keeper's cottage beside it is now a small museum about the island's shipwrecks."
)


def data_url(name: str) -> str:
    return "data:image/png;base64," + base64.b64encode(photo_png(name)).decode()


@pytest.fixture(scope="module")
def client(api_server, celery_worker):
    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=API_KEY, max_retries=0, timeout=300)


def test_rag_ingest_then_ask_cites_the_document(api):
    name = f"rest-{uuid.uuid4().hex[:8]}"
    ingest = wait_done(
        api,
        submit(
            api,
            "rag_ingest",
            {
                "collection": name,
                "documents": [{"text": LIGHTHOUSE, "id": "lighthouse", "metadata": {"topic": "islay"}}],
            },
            {},
        ),
        timeout=300,
    )
    assert ingest["status"] == "succeeded", ingest["error"]
    assert ingest["result"]["chunks_added"] >= 1 and ingest["progress"]["fraction"] == 1.0
    assert any(c["name"] == name for c in api.get("/v1/collections").json()["collections"])

    asked = wait_done(
        api,
        submit(
            api, "rag", {"collection": name, "question": "When was the Vireo lighthouse built?"}, {"max_tokens": 48}
        ),
        timeout=300,
    )
    assert asked["status"] == "succeeded", asked["error"]
    passages = asked["result"]["passages"]
    assert passages and passages[0]["doc_id"] == "lighthouse"
    if not asked["result"]["abstained"]:
        assert all(c["doc_id"] == "lighthouse" for c in asked["result"]["citations"])
    assert api.delete(f"/v1/collections/{name}").status_code == 200


def test_ingest_into_another_tenants_collection_stays_separate(api, other_tenant):
    name = f"rest-{uuid.uuid4().hex[:8]}"
    assert (
        wait_done(
            api, submit(api, "rag_ingest", {"collection": name, "documents": [{"text": LIGHTHOUSE}]}, {}), timeout=300
        )["status"]
        == "succeeded"
    )
    assert all(c["name"] != name for c in other_tenant.get("/v1/collections").json()["collections"])
    api.delete(f"/v1/collections/{name}")


def test_judge_job_grades_pairwise_in_both_orders(api):
    items = [{"question": "What is 2 + 2?", "answer_a": "4", "answer_b": "5"}]
    job = wait_done(
        api,
        submit(api, "judge", {"mode": "pairwise", "items": items, "method": "labels", "rationale": False}, {}),
        timeout=300,
    )
    assert job["status"] == "succeeded", job["error"]
    verdict = job["result"]["verdicts"][0]
    assert len(verdict["orders"]) == 2 and verdict["consistent"] == (len(set(verdict["orders"].values())) == 1)
    assert verdict["verdict"] == (next(iter(verdict["orders"].values())) if verdict["consistent"] else "inconsistent")


def test_caption_job_finds_the_cat(api):
    job = wait_done(api, submit(api, "caption", {"image_base64": data_url("chelsea")}, {}), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert "cat" in {o["label"] for o in job["result"]["objects"]}
    assert job["result"]["caption"] and job["result"]["path"] in ("llm_from_facts", "template_fallback")


def test_openai_image_parts_are_answered_by_the_caption_pipeline(client):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this picture."},
                {"type": "image_url", "image_url": {"url": data_url("chelsea")}},
            ],
        }
    ]
    reply = client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=60)
    assert reply.choices[0].message.content.strip()
    assert reply.id.startswith("chatcmpl-")
    streamed = list(client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=60, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed).strip()
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_openai_image_from_the_network_is_refused_clearly(client):
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x.test/cat.png"}}]}]
    with pytest.raises(openai.BadRequestError, match="data:image"):
        client.chat.completions.create(model="smollm2-135m", messages=messages)


async def test_vlm_path_against_vireo_itself(api_server, celery_worker):
    """The caption app's VLM path, with Vireo's own OpenAI endpoint as the vision-language server."""
    from vireo.apps.caption import caption_image_bytes
    from vireo.inference.backends.openai import OpenAIEngine
    from vireo.inference.local import EngineConfig

    engine = OpenAIEngine(
        EngineConfig(
            backend="openai", openai_base_url=f"{api_server}/v1", openai_api_key=API_KEY, openai_model="smollm2-135m"
        )
    )
    try:
        out = await caption_image_bytes(engine, photo_png("chelsea"), vision_model="smollm2-135m")
    finally:
        await engine.shutdown()
    assert out.path == "vlm" and out.caption.strip()
    assert out.usage["prompt_tokens"] > 0
