"""UI limits that tell the truth (issue #14, item 7), in headless Chromium on a stack of its own: an API
that takes 1 MiB per request, with docs/PLUGINS.md's example app installed, so the menu holds more
pages than Streamlit shows at once. No worker: nothing here needs a job to run."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from vireo.platform.processes import wait_until
from vireo.platform.redis_keys import job_key
from vireo.tools.drills.stack import ROOT, Stack

EXAMPLE = ROOT / "examples" / "vireo-plugin-headline"
BODY_LIMIT = 2**20


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    plugin = tmp_path_factory.mktemp("plugin")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(plugin),
            str(EXAMPLE),
        ],
        check=True,
        timeout=300,
    )
    env = {"PYTHONPATH": f"{ROOT}:{plugin}", "VIREO_MAX_BODY_BYTES": str(BODY_LIMIT)}
    with Stack(env=env, workers=0) as stack:
        stack.ui_url = stack.start_ui()
        yield stack


@pytest.fixture
def tab(browser, stack, screenshots, request):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    page.screenshot(path=str(screenshots / f"{request.node.name}.png"), full_page=True)
    context.close()


def open_add_documents(page, stack: Stack):
    page.goto(f"{stack.ui_url}/rag")
    page.get_by_role("tab", name="Add documents").click()
    panel = page.locator("[role='tabpanel']:visible")
    panel.get_by_text("Add to collection").wait_for()
    return panel


def ingest_jobs_into(stack: Stack, collection: str) -> list[str]:
    """Ids of the rag_ingest jobs submitted for `collection` (a job's input is read from its record)."""
    with stack.client() as client:
        jobs = client.get("/v1/jobs").json()["jobs"]
    return [
        job["id"]
        for job in jobs
        if job["app"] == "rag_ingest"
        and f'"collection": "{collection}"' in stack.redis().hget(job_key(job["id"]), "input")
    ]


def test_jobs_and_engine_stay_in_the_menu_when_plugins_add_pages(tab, stack):
    with stack.client() as client:
        assert "headline" in [app["name"] for app in client.get("/v1/apps").json()["apps"]]
    tab.goto(stack.ui_url)
    menu = tab.locator("[data-testid='stSidebarNav']")
    menu.get_by_text("Summarize", exact=True).wait_for()
    assert not menu.get_by_text("View", exact=False).filter(has_text="more").count(), "the menu hides entries"
    for page in ("Jobs", "Engine", "Headline"):  # the plugin's page (its generic form) is in sight too
        assert menu.get_by_text(page, exact=True).is_visible(), f"{page} is out of sight"


def test_the_uploader_states_the_apis_limit(tab, stack):
    panel = open_add_documents(tab, stack)
    panel.get_by_text(
        "Up to 0.7 MB of files per upload: the API takes 1.0 MB per request (VIREO_MAX_BODY_BYTES)"
    ).wait_for()
    panel.get_by_text("1MB per file", exact=False).wait_for()
    assert not panel.get_by_text("200MB", exact=False).count()


def test_an_upload_larger_than_the_api_takes_is_explained_and_not_sent(tab, stack, tmp_path):
    big = tmp_path / "handbook.txt"
    big.write_text("All work and no play. " * 43_000)  # 0.9 MB: under the uploader's 1 MB, over one request
    name = f"ui-{uuid.uuid4().hex[:8]}"
    panel = open_add_documents(tab, stack)
    panel.locator("input[type='file']").set_input_files(str(big))
    panel.get_by_text("handbook.txt").wait_for()
    box = panel.get_by_label("Collection")
    box.fill(name)
    box.press("Enter")
    panel.get_by_role("button", name="Add to collection").click()
    tab.get_by_text("This upload makes a request of 1.2 MB; the API takes at most 1.0 MB").wait_for()
    assert ingest_jobs_into(stack, name) == []
    with stack.client() as client:
        assert client.get(f"/v1/collections/{name}").status_code == 404, "nothing is created for a refused upload"


def test_a_new_collection_typed_where_documents_are_added_is_created_then_filled(tab, stack):
    existing, name = f"ui-{uuid.uuid4().hex[:8]}", f"ui-{uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        assert client.post("/v1/collections", json={"name": existing}).status_code == 201  # a list to pick from
        try:
            panel = open_add_documents(tab, stack)
            box = panel.get_by_label("Collection")
            box.fill(name)
            box.press("Enter")
            panel.get_by_label("…or paste text").fill("The lighthouse on Gull Island was built in 1887.")
            panel.get_by_role("button", name="Add to collection").click()
            wait_until(lambda: client.get(f"/v1/collections/{name}").status_code == 200, 30, "the new collection")
            wait_until(lambda: ingest_jobs_into(stack, name), 30, "the ingest job into it")
        finally:
            client.delete(f"/v1/collections/{name}")
            client.delete(f"/v1/collections/{existing}")
