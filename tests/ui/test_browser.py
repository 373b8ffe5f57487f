"""Drive the Streamlit UI in headless Chromium against the real API, worker and model."""

from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.conftest import free_port

ARTICLE = (
    "The city council met on Tuesday to discuss the new public library. The library will be built near "
    "the river and will open in two years. It will have a children's room, a music studio and a large "
    "reading hall with space for three hundred people. The council agreed to spend twelve million euros "
    "on the building. Some members worried about the cost, but most said the town has needed a bigger "
    "library for a long time, because the old one is too small and often closed for repairs. Work will "
    "start in the spring, and local schools will help choose the books for the children's room."
)
STREAMED = re.compile(r"([\d,]+) characters")


def open_page(page, ui_url: str, path: str = "") -> None:
    page.goto(f"{ui_url}/{path}")
    page.get_by_role("heading").first.wait_for()


def submit_summary(page, text: str, length: str = "medium") -> None:
    page.get_by_label("Text to summarize", exact=True).fill(text)
    page.get_by_text(length, exact=True).click()
    page.get_by_role("button", name="Summarize", exact=True).click()


def streamed_chars(page) -> int | None:
    """The job panel's live count of streamed characters, or None while it is not drawn."""
    line = page.locator("p", has_text=STREAMED).first
    if not line.count():
        return None
    match = STREAMED.search(line.inner_text())
    return int(match.group(1).replace(",", "")) if match else None


def shows_error(page) -> bool:
    return page.locator("[data-testid='stAlert']").count() > 0


def watch_stream(page, until: str, limit_s: float = 300) -> list[int]:
    """Streamed character counts seen while the job runs, polled until the text `until` (or an error) appears."""
    seen: list[int] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not page.get_by_text(until).count() and not shows_error(page):
        count = streamed_chars(page)
        if count is not None and (not seen or count != seen[-1]):
            seen.append(count)
        page.wait_for_timeout(50)
    return seen


def wait_for_job(api_client, app: str, limit_s: float = 300) -> dict:
    """The newest job, once it is of `app` and finished."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        jobs = api_client.jobs(limit=1)["jobs"]
        if jobs and jobs[0]["app"] == app and jobs[0]["status"] in ("succeeded", "failed", "cancelled"):
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"no finished {app} job within {limit_s} s")


def test_summarize_streams_tokens_then_shows_the_result(page, ui_url, api_client):
    open_page(page, ui_url)
    submit_summary(page, ARTICLE, "short")
    counts = watch_stream(page, "succeeded")
    assert not shows_error(page), page.locator("[data-testid='stAlert']").first.inner_text()
    page.get_by_text("succeeded").first.wait_for()
    assert len([c for c in counts if c > 0]) >= 2, f"no live streaming seen, only counts {counts}"
    assert counts == sorted(counts)
    job = api_client.jobs(limit=1)["jobs"][0]
    assert job["app"] == "summarize" and job["status"] == "succeeded"
    summary = job["result"]["summary"]
    assert summary and page.get_by_text(summary[:40]).count()
    page.get_by_text("Tokens out").wait_for()
    page.get_by_text("First token").wait_for()


def test_cancel_stops_a_running_summary(page, ui_url, api_client):
    open_page(page, ui_url)
    submit_summary(page, ARTICLE * 4, "long")
    deadline = time.monotonic() + 180
    while (streamed_chars(page) or 0) < 3 and time.monotonic() < deadline and not shows_error(page):
        page.wait_for_timeout(50)
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancelled.", exact=False).wait_for(timeout=60_000)
    job = api_client.jobs(limit=1)["jobs"][0]
    assert job["app"] == "summarize" and job["status"] == "cancelled"


def test_a_generic_app_page_builds_its_form_from_the_schema(page, ui_url):
    open_page(page, ui_url)
    assert not page.locator("[data-testid='stSidebarNav']").get_by_text("Echo", exact=False).count()  # diagnostics
    open_page(page, ui_url, "app-echo?diagnostics=1")  # asked for: listed, with its generic form
    page.get_by_label("Text").fill("hello from the browser test")
    page.get_by_role("button", name="Run").click()
    page.get_by_text("succeeded").first.wait_for(timeout=120_000)
    assert page.get_by_text("hello from the browser test").count()


def test_the_engine_page_shows_the_worker_statistics(page, ui_url):
    open_page(page, ui_url, "engine")
    page.get_by_text("Prefix-cache hit rate").first.wait_for()
    # the page re-renders every 2 s, so wait for each label rather than counting at one instant
    for label in ("Running", "Waiting", "KV-cache use", "Tokens/s", "Prefix-cache hit rate"):
        page.get_by_text(label, exact=True).first.wait_for(timeout=20_000)


def test_an_unreachable_api_is_explained_not_crashed(page, ui_url):
    open_page(page, ui_url)
    dead = f"http://127.0.0.1:{free_port()}"
    page.get_by_text("Connection", exact=True).click()  # folded away while the API answers
    url_box = page.get_by_label("API URL")
    url_box.fill(dead)
    url_box.press("Enter")
    page.get_by_text(f"cannot reach the Vireo API at {dead}").first.wait_for()
    assert not page.locator("[data-testid='stException']").count()


def test_chat_keeps_the_conversation_and_streams_replies(page, ui_url, api_client):
    open_page(page, ui_url, "chat")
    # a tab opens the newest conversation of this key, which another test may have left (test_browser_pages'
    # chat test, when both files run on one xdist worker): start a conversation of this test's own
    page.get_by_role("button", name="New conversation").click()
    page.get_by_text("System prompt and sampling").click()
    page.get_by_label("System prompt", exact=True).fill("You answer in one short sentence.")
    max_tokens = page.get_by_label("Max tokens", exact=True)
    max_tokens.fill("12")
    max_tokens.press("Enter")
    page.get_by_placeholder("Message Vireo").fill("Name a colour.")
    page.get_by_placeholder("Message Vireo").press("Enter")
    messages = page.locator("[data-testid='stChatMessage']")
    messages.nth(1).wait_for()  # the assistant's bubble, streaming
    job = wait_for_job(api_client, "chat")
    assert job["status"] == "succeeded"
    reply = job["result"]["text"].strip()
    page.get_by_role("button", name="Cancel").wait_for(state="detached")  # the reply moved into history
    # waited for: the rerun's stale bubbles stay on the page a moment; more than two that stay say what they are
    try:
        expect(messages).to_have_count(2, timeout=30_000)
    except AssertionError as exc:
        jobs = [(j["app"], j["status"]) for j in api_client.jobs(limit=5)["jobs"]]
        raise AssertionError(f"chat bubbles {messages.all_inner_texts()}; newest jobs {jobs}") from exc
    assert "Name a colour." in messages.nth(0).inner_text()
    # the reply's first word as the page renders it: markdown marks ("**The") are not text on the page
    first_word = re.search(r"[^\W\d_]{2,}", reply)
    assert first_word is not None and first_word.group() in messages.nth(1).inner_text()


RAG_TEXT = (
    "The Vireo lighthouse stands on Gull Island. It was built in 1887 by the harbour board. "
    "Its lamp is visible for twenty-two nautical miles, and the keeper's cottage is now a museum."
)


def visible_tab(page):
    return page.locator("[role='tabpanel']:visible")


def pick(page, scope, label: str, option: str) -> None:
    """Choose `option` in the Streamlit select box labelled `label` inside `scope`."""
    scope.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def created_by_the_page(page, api_client, name: str, limit_s: float = 60) -> None:
    """Wait until the API lists collection `name`; if it never does, fail with what the page shows."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if any(c["name"] == name for c in api_client.collections()):
            return
        page.wait_for_timeout(250)
    raise AssertionError(
        f"collection {name} was not created within {limit_s} s; the page shows:\n" + visible_tab(page).inner_text()
    )


def test_rag_collection_documents_and_a_cited_answer(page, ui_url, api_client):
    name = f"ui-{uuid.uuid4().hex[:8]}"
    open_page(page, ui_url, "rag")
    page.get_by_role("tab", name="Collections").click()
    typed = visible_tab(page).get_by_label("New collection")
    typed.fill(name)
    typed.press("Tab")  # commit the value before the click, so a slow rerun cannot drop it
    visible_tab(page).get_by_role("button", name="Create").click()
    created_by_the_page(page, api_client, name)
    page.get_by_role("tab", name="Collections").click()
    listed = page.locator("[data-testid='stDataFrame']").get_by_text(name)
    try:
        listed.wait_for(state="attached")  # the table shows what the API lists
    except PlaywrightTimeout:
        raise AssertionError(
            f"collection {name} is not in the table; the page shows:\n" + visible_tab(page).inner_text()
        ) from None

    page.get_by_role("tab", name="Add documents").click()
    pick(page, visible_tab(page), "Collection", name)
    visible_tab(page).get_by_label("…or paste text").fill(RAG_TEXT)
    visible_tab(page).get_by_role("button", name="Add to collection").click()
    ingest = wait_for_job(api_client, "rag_ingest")
    assert ingest["status"] == "succeeded", ingest["error"]
    assert ingest["result"]["collection"] == name and ingest["result"]["chunks_added"] >= 1

    page.get_by_role("tab", name="Ask").click()
    pick(page, visible_tab(page), "Collection", name)
    visible_tab(page).get_by_label("Question").fill("When was the Vireo lighthouse built?")
    visible_tab(page).get_by_role("button", name="Ask").click()
    answer = wait_for_job(api_client, "rag")
    assert answer["status"] == "succeeded", answer["error"]
    page.get_by_role("tab", name="Ask").click()
    if answer["result"]["abstained"]:
        visible_tab(page).get_by_text("No answer from these documents").wait_for()
    else:
        visible_tab(page).get_by_text("Citations", exact=True).wait_for()
        visible_tab(page).get_by_role("button", name="[1]").first.click()  # a citation opens its passage
        page.get_by_role("dialog").get_by_text("1887", exact=False).wait_for()
        page.get_by_role("dialog").get_by_role("button", name="Close").click()

    page.get_by_role("tab", name="Collections").click()
    pick(page, visible_tab(page), "Delete a collection", name)
    visible_tab(page).get_by_role("button", name="Delete").click()
    deadline = time.monotonic() + 60
    while any(c["name"] == name for c in api_client.collections()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert all(c["name"] != name for c in api_client.collections())
